"""Through real RabbitMQ into PostgreSQL: the record consumer checks envelope seal, hash and
signature before filing; a message altered in transit is parked (dead-lettered), never stored."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time

import pika
import pytest

from gateway.broker.message import COMPRESSED_FORMAT, DocumentMessage, encode
from gateway.envelope import Code, Envelope
from gateway.outcome import Accepted
from gateway.pipeline import ingest
from gateway.signing import setup
from gateway.submission import Submission
from tests.broker.helpers import get_one, post
from tests.conftest import FIXTURES
from tests.records.builders import CONFIDENTIALITY, OTHER_INS

CDA_INS = "184127505612355"  # the patient of cda/crbio_glycemia.xml

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def one_byte_changed_in_the_payload(body: bytes, payload: bytes) -> bytes:
    start = body.index(base64.b64encode(payload)) + 120
    replacement = b"B" if body[start : start + 1] == b"A" else b"A"
    return body[:start] + replacement + body[start + 1 :]


def publish(url: str, exchange: str, bodies: list[bytes], document_id: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for body in bodies:
            props = pika.BasicProperties(message_id=document_id, delivery_mode=2)
            channel.basic_publish(exchange, "patient-record", body, props, mandatory=True)
    finally:
        conn.close()


def drain(url: str, queue: str, expected: int, timeout: float = 15.0) -> list[bytes]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    got: list[bytes] = []
    try:
        channel = conn.channel()
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            _method, _props, body = channel.basic_get(queue, auto_ack=True)
            if body is None:
                time.sleep(0.05)
            else:
                got.append(body)
    finally:
        conn.close()
    return got


def test_message_altered_in_transit_is_parked_and_never_stored(start_gateway, pg_url, cda):
    gw = start_gateway(database_url=pg_url)
    services = gw.services
    accepted = ingest(Submission(raw=cda, transport="test", sender="test"), services.tools)
    assert isinstance(accepted, Accepted) and accepted.envelope.signature is not None
    env, payload = accepted.envelope, accepted.payload
    key = services.tools.seal_key
    genuine = encode(DocumentMessage(env, payload), seal_key=key, routed=accepted.destinations)

    altered = payload.replace(b"mmol", b"mmoL", 1)
    rehashed = dataclasses.replace(env, sha256=hashlib.sha256(altered).hexdigest())
    stripped = dataclasses.replace(env, signature=None)
    # Sealed with the gateway's key, as by someone who holds it: the signature still catches it.
    tampered = [
        one_byte_changed_in_the_payload(genuine, payload),  # caught by the hash
        # hash forged: the signature catches it
        encode(DocumentMessage(rehashed, altered), seal_key=key, routed=accepted.destinations),
        # signature stripped
        encode(DocumentMessage(stripped, payload), seal_key=key, routed=accepted.destinations),
    ]
    publish(
        services.settings.amqp_url, services.names.exchange, [*tampered, genuine], env.document_id
    )

    deadline = time.monotonic() + 20
    while (row := services.store.document(env.document_id)) is None:
        assert time.monotonic() < deadline, "the genuine message was not filed"
        time.sleep(0.05)
    assert row["payload"] == payload  # the genuine one, not a tampered one
    parked = drain(services.settings.amqp_url, services.names.queue("parking"), len(tampered))
    assert sorted(parked) == sorted(tampered)

    # Read back from the record store, the document still proves it is what the gateway signed.
    stored = Envelope.from_json(row["envelope"])
    result = setup.load_verifier(services.settings).verify(stored, row["payload"])
    assert result.valid, result
    assert result.key_id == stored.signature.key_id


def with_seal_of(body: bytes, genuine: bytes) -> bytes:
    """``body`` (a /3 message) carrying the seal of ``genuine`` and the destinations it covers:
    what someone without the key can do, having read a genuine message."""
    head, _, parts = body.partition(b"\n")
    data = json.loads(head)
    sealed = json.loads(genuine.partition(b"\n")[0])
    data["seal"], data["routed"] = sealed["seal"], sealed["routed"]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" + parts


def test_an_envelope_edited_in_transit_is_parked_and_filed_under_no_one(start_gateway, pg_url, cda):
    """The reviewer's case: a genuinely signed CDA whose envelope names another patient and is
    masked. The signature (over the payload) still verifies; the seal does not."""
    gw = start_gateway(database_url=pg_url)
    services = gw.services
    accepted = ingest(Submission(raw=cda, transport="test", sender="test"), services.tools)
    assert isinstance(accepted, Accepted)
    env, payload = accepted.envelope, accepted.payload
    genuine = encode(
        DocumentMessage(env, payload),
        COMPRESSED_FORMAT,
        seal_key=services.tools.seal_key,
        routed=accepted.destinations,
    )
    other = dataclasses.replace(
        env,
        patient=dataclasses.replace(env.patient, ins=OTHER_INS, family_name="AUTRE"),
        confidentiality=(*env.confidentiality, Code("MASQUE_PS", CONFIDENTIALITY)),
    )
    assert setup.load_verifier(services.settings).verify(other, payload).valid  # signature ok
    edited = with_seal_of(encode(DocumentMessage(other, payload), COMPRESSED_FORMAT), genuine)
    unsealed = encode(DocumentMessage(other, payload), COMPRESSED_FORMAT)  # as before seals
    publish(
        services.settings.amqp_url, services.names.exchange, [edited, unsealed], env.document_id
    )

    parked = drain(services.settings.amqp_url, services.names.queue("parking"), 2)
    assert sorted(parked) == sorted([edited, unsealed])
    assert services.store.document(env.document_id) is None
    assert services.store.documents_for_patient(OTHER_INS) == []
    assert services.store.documents_for_patient(env.patient.ins) == []


ROUTED_AWAY = """\
version: 1
destinations:
  patient-record: {type: quorum, consumer: patient-record, dead_letter: parking,
                   format: passerelle.document/3}
  patient-mailbox: {type: quorum, dead_letter: parking}
  parking: {type: quorum}
default: {to: [patient-mailbox, parking]}
parking: parking
"""


def test_a_body_taken_from_another_queue_is_parked_not_filed(
    start_gateway, pg_url, broker_ns, tmp_path
):
    """The reviewer's case end to end: the gateway keeps a document out of the record (routed
    to the patient's mailbox and to parking); a genuine, sealed copy taken from either queue
    and published to the patient-record queue is parked, never filed."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTED_AWAY)
    gw = start_gateway(database_url=pg_url, GATEWAY_ROUTING_FILE=str(routing))
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    status, receipt = post(gw.http_url + "/documents", cda)
    assert status == 202 and receipt["destinations"] == ["patient-mailbox", "parking"], receipt
    url, q = broker_ns.url, broker_ns.names.queue
    copies = [get_one(url, q("patient-mailbox"))[1], get_one(url, q("parking"))[1]]
    document_id = receipt["id"]
    for body in copies:
        publish(url, broker_ns.names.exchange, [body], document_id)

    parked = [get_one(url, q("parking"), timeout=15) for _ in copies]
    assert sorted(body for _, body in parked) == sorted(copies)  # as they were
    for props, _ in parked:
        failure = props.headers["x-passerelle-failure"]
        assert "not routed to the record" in failure and "patient-mailbox" in failure
    assert gw.services.store.document(document_id) is None
    assert gw.services.store.documents_for_patient(CDA_INS) == []
