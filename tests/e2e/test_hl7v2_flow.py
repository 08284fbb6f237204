"""HL7v2 through the running gateway: real RabbitMQ and record store, ACK after confirm."""

from __future__ import annotations

import time

import pika
import pytest

from gateway.adapters.hl7v2.parser import parse
from tests.adapters.hl7v2.test_intake import INS, lab
from tests.e2e.test_document_flow import mllp_exchange, wait_for

pytestmark = [pytest.mark.broker]


def queue_depth(broker_ns, name: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
    try:
        return (
            conn.channel()
            .queue_declare(broker_ns.names.queue(name), passive=True)
            .method.message_count
        )
    finally:
        conn.close()


def test_resent_message_is_acked_again_and_stored_once(start_gateway, broker_ns):
    gw = start_gateway()
    message = lab(control="DUP-1")
    first, _ = parse(mllp_exchange(gw.mllp, message))
    again, _ = parse(mllp_exchange(gw.mllp, message))  # the sender lost our first ACK
    assert [first.value("MSA-1"), again.value("MSA-1")] == ["AA", "AA"]
    assert first.value("MSA-2") == again.value("MSA-2") == "DUP-1"
    stored = wait_for(lambda: gw.services.store.documents_for_patient(INS))
    time.sleep(0.5)  # let the second copy reach the consumer too
    assert len(gw.services.store.documents_for_patient(INS)) == 1
    row = gw.services.store.document(stored[0]["document_id"])
    assert row["set_id"] and row["version"] >= 1
    # The copy was a duplicate (same id, same bytes), not a conflict sent to parking.
    assert queue_depth(broker_ns, "parking") == 0
    assert queue_depth(broker_ns, "patient-record") == 0


@pytest.mark.shared
def test_corpus_oru_with_two_cda_files_both_documents(start_gateway, shared):
    gw = start_gateway()
    raw = (
        shared
        / "corpus/hl7v2/TRANS_DOC_CDA_HL7V2_V2.0/ORU/Remplacement ORU"
        / "message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7"
    ).read_bytes()
    answer, _ = parse(mllp_exchange(gw.mllp, raw))
    assert answer.value("MSA-1") == "AA"
    ids = {"1.2.250.1.213.1.1.12", "1.2.250.1.213.1.1.11"}
    wait_for(lambda: all(gw.services.store.document(i) for i in ids))
