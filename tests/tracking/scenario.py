"""A running gateway with one message in each state: filed, rejected, parked (and an MLLP one)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from gateway.cli.send import send_mllp
from tests.conftest import FIXTURES
from tests.waiting import wait_for

CDA = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
ORU = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
CDA_INS, ORU_INS, BAD_INS = b"184127505612355", b"292059912304525", b"184127505612399"
PATIENT_TEXT = ("184127505612355", "184127505612399", "292059912304525", "MARTIN", "DURAND")


def operator_token(gw) -> str:
    """A bearer token for /messages and /ui (api/operator.py)."""
    from gateway.api.identity import mint
    from gateway.records.access import Caller, CallerKind

    return mint(gw.services.token_secret, Caller(CallerKind.OPERATOR, "test-operator"))


def http(
    method: str, url: str, body: bytes | None = None, token: str | None = None
) -> tuple[int, dict | str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("content-type", "")
    text = raw.decode()
    return status, json.loads(text) if "json" in ctype else text


def status_of(gw, message_id: str) -> str | None:
    gw.services.tracker.flush(5)
    found = gw.services.tracking.message(message_id)
    return found and found["status"]


@dataclass
class Populated:
    filed: str
    rejected: str
    parked: str
    mllp: str
    mllp_ack: bytes


def populate(gw) -> Populated:
    status, filed = http("POST", gw.http_url + "/documents", CDA)
    assert status == 202, filed
    status, rejected = http("POST", gw.http_url + "/documents", CDA.replace(CDA_INS, BAD_INS))
    assert status == 422, rejected
    # Same document id, other content: accepted, then refused by the record consumer
    # (never overwrite a filed document) and dead-lettered to parking. Sent once the first
    # is filed: two record consumers file concurrently, and of two documents under one id in
    # flight at once, whichever commits first is filed and the other parked.
    assert wait_for(lambda: status_of(gw, filed["message_id"]) == "filed")
    other = CDA.replace(b"<title>Compte rendu", b"<title>Second compte rendu")
    status, parked = http("POST", gw.http_url + "/documents", other)
    assert status == 202, parked
    host, port = gw.mllp
    answer = send_mllp(host, port, ORU, timeout=30)
    assert answer.status == "accepted", answer
    for message_id, expected in ((filed["message_id"], "filed"), (parked["message_id"], "parked")):
        assert wait_for(lambda m=message_id, e=expected: status_of(gw, m) == e), expected
    [mllp] = wait_for(lambda: gw.services.tracking.search(control_id="LAB-000001"))
    assert wait_for(lambda: status_of(gw, mllp["trace_id"]) == "filed")
    return Populated(
        filed["message_id"], rejected["message_id"], parked["message_id"], mllp["trace_id"], b""
    )
