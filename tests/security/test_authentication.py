"""Sender authentication and authorisation against a running gateway.

API keys over HTTP, mutual TLS on MLLP and HTTPS (certificates made at test time), grants per
document type and facility (refusals audited), connections per sender, request timeouts.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from gateway.security.senders import hash_key
from tests.conftest import FIXTURES
from tests.reliability.support import MllpSender, wait_for
from tests.security.certs import Authority

pytestmark = pytest.mark.broker

CDA = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()  # 11502-2, custodian 1750000001
ORU = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()  # MSH-4 LABO-TILLEULS


def senders_yaml(tmp_path) -> str:
    path = tmp_path / "senders.yaml"
    path.write_text(
        f"""senders:
  - id: labo-tilleuls
    api_key_sha256: {hash_key("labo-secret")}
    cert_cn: labo.test
    document_types: ["11502-2", "ORU^R01"]
    facilities: ["1750000001", "LABO-TILLEULS"]
    max_connections: 1
  - id: pharmacie
    api_key_sha256: {hash_key("pharma-secret")}
    document_types: ["60591-5"]
    facilities: ["*"]
  - id: autre-etablissement
    api_key_sha256: {hash_key("other-secret")}
    document_types: ["*"]
    facilities: ["9999999999"]
"""
    )
    return str(path)


def post(url: str, body: bytes, headers: dict | None = None, context=None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def denials(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.getMessage() == "security.denied"]


def test_api_keys_authenticate_and_grants_authorise(start_gateway, tmp_path, caplog):
    gw = start_gateway(GATEWAY_SENDERS_FILE=senders_yaml(tmp_path))
    url = gw.http_url + "/documents"

    assert post(url, CDA)[0] == 401
    assert post(url, CDA, {"X-API-Key": "guessed"})[0] == 401
    status, body = post(url, CDA, {"X-API-Key": "labo-secret"})
    assert status == 202, body
    status, body = post(url, CDA, {"X-API-Key": "pharma-secret"})
    assert status == 403
    assert [f["rule"] for f in body["findings"]] == ["auth.document-type"]
    assert "11502-2" in body["findings"][0]["message"]
    status, body = post(url, CDA, {"X-API-Key": "other-secret"})
    assert status == 403
    assert [f["rule"] for f in body["findings"]] == ["auth.facility"]

    audited = denials(caplog)
    assert [d.get("rules") for d in audited if "rules" in d] == [
        ["auth.document-type"],
        ["auth.facility"],
    ]
    assert {d.get("sender") for d in audited if "rules" in d} == {
        "pharmacie",
        "autre-etablissement",
    }
    assert sum(1 for d in audited if "rules" not in d) == 2, "both 401s are audited too"


def test_unauthenticated_mllp_is_refused_when_authentication_is_on(start_gateway, tmp_path):
    gw = start_gateway(GATEWAY_SENDERS_FILE=senders_yaml(tmp_path))
    assert MllpSender(gw.mllp, timeout=5).send(ORU) is None, "closed without an ACK"


@pytest.fixture
def pki(tmp_path):
    ca = Authority(tmp_path)
    rogue = Authority(tmp_path, "Rogue CA")
    return {
        "ca": ca,
        "server": ca.issue("127.0.0.1", server=True),
        "labo": ca.issue("labo.test"),
        "stranger": ca.issue("stranger.test"),
        "rogue": rogue.issue("labo.test"),
    }


def client_context(pki, who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"].pem))
    if who is not None:
        context.load_cert_chain(pki[who].cert, pki[who].key)
    return context


def test_mutual_tls_names_the_sender_on_mllp_and_https(start_gateway, tmp_path, pki):
    gw = start_gateway(
        GATEWAY_SENDERS_FILE=senders_yaml(tmp_path),
        GATEWAY_TLS_CERT=str(pki["server"].cert),
        GATEWAY_TLS_KEY=str(pki["server"].key),
        GATEWAY_TLS_CLIENT_CA=str(pki["ca"].pem),
    )
    labo = MllpSender(gw.mllp, timeout=5, tls=client_context(pki, "labo"))
    assert labo.send(ORU) == "AA"

    for who in (None, "stranger", "rogue"):  # no cert, unknown name, untrusted issuer
        assert MllpSender(gw.mllp, timeout=5, tls=client_context(pki, who)).send(ORU) is None

    # max_connections: 1 — a second connection of the same sender is closed at once.
    second = MllpSender(gw.mllp, timeout=5, tls=client_context(pki, "labo"))
    assert second.send(ORU) is None
    labo.close()
    time.sleep(0.2)
    assert MllpSender(gw.mllp, timeout=5, tls=client_context(pki, "labo")).send(ORU) == "AA"

    https = gw.http_url.replace("http://", "https://") + "/documents"
    status, body = post(https, CDA, context=client_context(pki, "labo"))
    assert status == 202, body
    row = wait_for(lambda: gw.services.store.document(body["id"]), 15, "filed")
    assert json.loads(row["envelope"])["sender"] == "labo-tilleuls"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        post(https, CDA, context=client_context(pki, None))


def test_slow_senders_are_cut_off_by_the_request_timeout(start_gateway):
    gw = start_gateway(GATEWAY_REQUEST_TIMEOUT="0.5")
    host, port = gw.http_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<Clin")
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")

    with socket.create_connection(gw.mllp, timeout=5) as sock:
        sock.sendall(b"\x0bMSH|^~\\&|half a frame")
        started = time.monotonic()
        assert sock.recv(100) == b"", "closed, no ACK for half a frame"
        assert time.monotonic() - started < 3


def test_requests_in_flight_beyond_the_senders_maximum_get_429(start_gateway, tmp_path):
    gw = start_gateway(GATEWAY_SENDERS_FILE=senders_yaml(tmp_path), GATEWAY_REQUEST_TIMEOUT="2")
    host, port = gw.http_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as slow:
        # labo-tilleuls may have one request in flight: this one holds it, body unfinished.
        slow.sendall(
            b"POST /documents HTTP/1.1\r\nHost: x\r\nX-API-Key: labo-secret\r\n"
            b"Content-Length: 100\r\n\r\n<Clin"
        )
        time.sleep(0.3)
        assert post(gw.http_url + "/documents", CDA, {"X-API-Key": "labo-secret"})[0] == 429
        assert slow.recv(4096).startswith(b"HTTP/1.1 408")
    assert post(gw.http_url + "/documents", CDA, {"X-API-Key": "labo-secret"})[0] == 202
