"""A CDA over HTTP and an ORU^R01 over MLLP go through real RabbitMQ into a PostgreSQL record."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import pika
import pytest

from gateway.adapters.hl7v2.mllp import FrameDecoder, frame
from gateway.adapters.hl7v2.parser import parse
from gateway.signing import seal
from tests.conftest import FIXTURES
from tests.waiting import wait_for

CDA_INS = "184127505612355"
ORU_INS = "292059912304525"

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
        return json.loads(resp.read())


def patient_token(gw, ins: str) -> str:
    """What the patient shows the records API (api/identity.py)."""
    from gateway.api.identity import mint
    from gateway.records.access import Caller, CallerKind

    return mint(gw.services.token_secret, Caller(CallerKind.PATIENT, ins))


def mllp_exchange(address: tuple[str, int], message: bytes) -> bytes:
    import socket

    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(frame(message))
        decoder = FrameDecoder()
        while True:
            frames = decoder.feed(sock.recv(65536))
            if frames:
                return frames[0].payload


def test_cda_over_http_and_oru_over_mllp_reach_the_patient_record(start_gateway, pg_url):
    gw = start_gateway(database_url=pg_url)

    status, body = post(
        gw.http_url + "/documents", (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    )
    assert status == 202, body
    assert body["status"] == "accepted"
    assert body["id"] == "1.2.250.1.999.1.1.20261101.4711"

    ack_bytes = mllp_exchange(gw.mllp, (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes())
    ack, _ = parse(ack_bytes)
    assert ack.value("MSA-1") == "AA"
    assert ack.value("MSA-2") == "LAB-000001"
    assert ack.value("MSH-3") == "PASSERELLE" and ack.value("MSH-5") == "LAB-SIL"

    cda_token, oru_token = patient_token(gw, CDA_INS), patient_token(gw, ORU_INS)
    cda_docs = wait_for(
        lambda: get(f"{gw.http_url}/patients/{CDA_INS}/documents", cda_token)["documents"]
    )
    oru_docs = wait_for(
        lambda: get(f"{gw.http_url}/patients/{ORU_INS}/documents", oru_token)["documents"]
    )
    assert [d["id"] for d in cda_docs] == ["1.2.250.1.999.1.1.20261101.4711"]
    assert cda_docs[0]["type_code"] == "11502-2"
    assert cda_docs[0]["set_id"] == "1.2.250.1.999.1.2.20261101.4711"
    assert len(oru_docs) == 1 and oru_docs[0]["source_kind"] == "hl7v2"


def test_redelivered_and_resent_documents_are_filed_once(start_gateway, pg_url, broker_ns):
    gw = start_gateway(database_url=pg_url)
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()

    assert post(gw.http_url + "/documents", cda)[0] == 202
    # The sender did not get our answer and sends the same document again.
    assert post(gw.http_url + "/documents", cda)[0] == 202
    # And the broker delivers one more copy (as after a consumer crash before its ack).
    stored = wait_for(lambda: gw.services.store.documents_for_patient(CDA_INS))
    row = gw.services.store.document(stored[0]["document_id"])
    envelope = json.loads(row["envelope"])
    message = {
        "format": "passerelle.document/1",
        "envelope": envelope,
        # the copy a gateway published carries the seal of its envelope and of where it
        # routed it (docs/signing.md)
        "seal": seal.seal(
            gw.services.tools.seal_key,
            ["patient-record"],
            json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode(),
        ),
        "routed": ["patient-record"],
        "payload": base64.b64encode(row["payload"]).decode(),
        "attachments": [],
    }
    conn = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
    ch = conn.channel()
    ch.basic_publish(
        broker_ns.names.exchange,
        "patient-record",
        json.dumps(message).encode(),
        pika.BasicProperties(message_id=row["document_id"], delivery_mode=2),
    )
    conn.close()

    queue = broker_ns.names.queue("patient-record")

    def drained() -> bool:
        c = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
        try:
            q = c.channel().queue_declare(queue, passive=True)
            return q.method.message_count == 0
        finally:
            c.close()

    time.sleep(0.5)
    wait_for(drained)
    assert len(gw.services.store.documents_for_patient(CDA_INS)) == 1
    parking = broker_ns.names.queue("parking")
    c = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
    try:  # filed once, not refused: nothing was parked
        assert c.channel().queue_declare(parking, passive=True).method.message_count == 0
    finally:
        c.close()
