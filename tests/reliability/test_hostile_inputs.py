"""The hostile corpus (tests/fixtures/hostile/): each input is refused with its own rule, or,
for text that merely looks dangerous, stored verbatim and served back as inert JSON."""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import UTC, datetime

import pytest

from gateway.adapters.cda.parser import CdaLimits, parse
from gateway.adapters.hl7v2 import ack
from gateway.adapters.hl7v2.parser import parse_header
from gateway.document import Document
from gateway.findings import error
from gateway.outcome import Receipt, ReceiptStatus, Rejected
from gateway.pipeline import Checks, read
from gateway.submission import Submission
from tests.conftest import FIXTURES
from tests.reliability.support import MllpSender, filed_ids, wait_for

HOSTILE = FIXTURES / "hostile"
FIFTY_MB = 50 * 1024 * 1024

REFUSED = {
    "xxe_file.xml": "xml.doctype",
    "xxe_network.xml": "xml.doctype",
    "xxe_parameter_entity.xml": "xml.doctype",
    "billion_laughs.xml": "xml.doctype",
    "deep_nesting.xml": "xml.well-formed",  # libxml2's own depth limit, before ours
    "invalid_utf8.xml": "xml.well-formed",
    "nul_bytes.xml": "xml.well-formed",
    "invalid_utf8.hl7": "hl7.charset",
    "nul_bytes.hl7": "hl7.control-character",
    "wrong_delimiters.hl7": "hl7.delimiters",
    "segments_without_msh.hl7": "input.format",
}


def judge(raw: bytes) -> Document | Rejected:
    return read(Submission(raw=raw, transport="test", sender="mllp:127.0.0.1"), Checks())


def test_the_corpus_is_complete():
    names = {p.name for p in HOSTILE.iterdir() if p.name != "README.md"}
    assert names == set(REFUSED) | {"injection_text.xml", "sql_injection.hl7"}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_input_is_refused_with_its_rule(name):
    outcome = judge((HOSTILE / name).read_bytes())
    assert isinstance(outcome, Rejected)
    assert REFUSED[name] in {f.rule for f in outcome.report.errors}
    text = json.dumps([f.to_dict() for f in outcome.report.findings])
    assert "root:" not in text, "no file content leaks into the report"


def test_deeper_nesting_than_our_limit_is_refused_even_below_libxml2s():
    raw = b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<c>" * 150 + b"</c>" * 150
    doc, findings = parse(raw + b"</ClinicalDocument>", CdaLimits(max_depth=100))
    assert doc is None and [f.rule for f in findings] == ["xml.depth"]


def test_fifty_megabyte_document_is_refused_by_size_without_parsing():
    big = b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<a/>" * (FIFTY_MB // 4)
    doc, findings = parse(big, CdaLimits())
    assert doc is None and [f.rule for f in findings] == ["xml.size"]


def test_ten_thousand_obx_are_read_and_an_ack_of_as_many_findings_stays_bounded():
    oru = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes().rstrip(b"\r")
    obx = b"\rOBX|%d|NM|14749-6^Glucose^LN||5.4|mmol/L|4.1-5.9|N|||F"
    raw = oru + b"".join(obx % i for i in range(4, 10_004)) + b"\r"
    assert isinstance(judge(raw), Document)
    findings = [error("hl7.obx", "bad value", location=f"OBX[{i}]-5") for i in range(10_000)]
    receipt = Receipt(ReceiptStatus.REJECTED, "t", findings=tuple(findings))
    reply = ack.build(parse_header(raw), receipt, datetime.now(UTC), "c", findings)
    assert 0 < reply.count(b"\rERR|") <= ack.MAX_ERR_SEGMENTS


@pytest.mark.broker
def test_fifty_megabytes_over_http_and_mllp_are_refused_early(start_gateway):
    gw = start_gateway()
    host, port = gw.http_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: {FIFTY_MB}\r\n"
            "Content-Type: application/xml\r\n\r\n".encode()
        )
        status = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 413 Request Entity Too Large"

    head = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
    sender = MllpSender(gw.mllp)
    assert sender.send(head + b"OBX|4|TX|||" + b"x" * FIFTY_MB) == "AR"
    assert sender.send(head) == "AA", "the connection survives the oversize frame"
    sender.close()


@pytest.mark.broker
@pytest.mark.postgres
def test_injection_text_is_stored_verbatim_and_served_as_inert_json(pg_url, start_gateway):
    gw = start_gateway(database_url=pg_url)
    cda = (HOSTILE / "injection_text.xml").read_bytes()
    req = urllib.request.Request(gw.http_url + "/documents", data=cda, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
        doc_id = json.loads(resp.read())["id"]
    assert MllpSender(gw.mllp).send((HOSTILE / "sql_injection.hl7").read_bytes()) == "AA"

    wait_for(lambda: len(filed_ids(pg_url)) == 2, 20, "both filed")  # the table survived
    from gateway.api.identity import mint
    from gateway.records.access import Caller, CallerKind

    token = mint(gw.services.token_secret, Caller(CallerKind.PATIENT, "184127505612355"))
    read = urllib.request.Request(
        f"{gw.http_url}/documents/{doc_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(read, timeout=10) as resp:
        assert resp.headers["content-type"] == "application/json"
        body = json.loads(resp.read())
    title = body["envelope"].get("title")
    assert title == "CR'); DROP TABLE documents;-- <script>alert(1)</script>"
    stored = gw.services.store.document(doc_id)
    assert stored["payload"] == cda


def _padding(kilobytes: int) -> bytes:
    """Header lines of a kilobyte each."""
    return b"".join(b"X-Padding-%d: %s\r\n" % (i, b"a" * 990) for i in range(kilobytes))


def _http_get(sock: socket.socket, kilobytes: int) -> bytes:
    """A keep-alive GET /ready whose head carries ``kilobytes`` KB of headers; the answer."""
    sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n" + _padding(kilobytes) + b"\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next(v for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n"))
                      if k.lower() == b"content-length"))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0]


@pytest.mark.broker
def test_a_request_head_past_sixteen_kilobytes_is_refused_and_the_gateway_serves_on(
    start_gateway,
):
    """The HTTP parser bounds nothing by itself: the gateway does (gateway.api.http_protocol;
    the bound itself, byte for byte: tests/api/test_http_protocol.py)."""
    gw = start_gateway()
    host, port = gw.http_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # two requests on one connection, 12 KB of headers each (a large signature header)
        assert _http_get(sock, 12) == b"HTTP/1.1 200 OK"
        assert _http_get(sock, 12) == b"HTTP/1.1 200 OK", "the bound is per request"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:  # 20 KB of headers, no end in sight
            sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n" + _padding(20))
            answer = sock.recv(4096)
        except ConnectionResetError:  # closed with some of it unread: refused all the same
            answer = b"reset"
        assert answer.startswith(b"HTTP/1.1 400 ") or answer == b"reset", answer[:60]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        assert _http_get(sock, 0) == b"HTTP/1.1 200 OK"
