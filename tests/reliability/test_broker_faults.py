"""RabbitMQ faults: connections killed mid-stream, queues over their limit, a blocked broker.

A sender told AA holds a promise: the document reaches the patient record exactly once. A
sender told AR (or given no ACK) resends, and its resend succeeds once the gateway has
reconnected by itself.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from tests.reliability.support import (
    MllpSender,
    amqp_connections,
    close_connections,
    document_id,
    filed_ids,
    oru,
    send_until_accepted,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

DOCUMENTS = 1000
SENDERS = 4


def test_connections_killed_mid_stream_lose_nothing_and_file_once(pg_url, start_gateway):
    gw = start_gateway(database_url=pg_url, GATEWAY_PUBLISH_TIMEOUT="5")
    wait_for(lambda: all(c.consuming.is_set() for c in gw.services.consumers), 10, "consuming")
    connections = amqp_connections(os.getpid())
    assert len(connections) >= 2, "the publisher's and the consumer's connections"
    control_ids = [f"REL-{i:05d}" for i in range(DOCUMENTS)]
    accepted: list[str] = []
    replies: dict[str | None, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + 60

    def stream(share: list[str]) -> None:
        sender = MllpSender(gw.mllp)
        try:
            for cid in share:

                def note(code: str | None) -> None:
                    with lock:
                        replies[code] = replies.get(code, 0) + 1

                send_until_accepted(sender, cid, deadline, note)
                with lock:
                    accepted.append(cid)
        finally:
            sender.close()

    with ThreadPoolExecutor(SENDERS) as pool:
        futures = [pool.submit(stream, control_ids[i::SENDERS]) for i in range(SENDERS)]
        wait_for(lambda: len(accepted) >= DOCUMENTS // 10, 30, "a tenth accepted")
        close_connections(connections)
        for f in futures:
            f.result(timeout=90)

    assert sorted(accepted) == control_ids
    assert replies.get("AR", 0) + replies.get(None, 0) > 0, "the fault was felt by senders"
    expected = {document_id(cid) for cid in control_ids}
    wait_for(lambda: len(filed_ids(pg_url)) >= DOCUMENTS, 60, "every document filed")
    ids = filed_ids(pg_url)
    assert len(ids) == len(set(ids)) == DOCUMENTS
    assert set(ids) == expected
    assert gw.services.publisher.ready, "the publisher reconnected by itself"


def test_full_queue_answers_unavailable_quickly(start_gateway, tmp_path, broker_ns):
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\n"
        "destinations:\n"
        "  patient-record: {queue: patient-record, type: quorum, max_length: 5}\n"
        "rules:\n"
        "  - {name: all, match: {patient.ins: {exists: true}}, to: [patient-record]}\n"
        "default: {to: [patient-record]}\n"
    )
    gw = start_gateway(GATEWAY_ROUTING_FILE=str(routing))
    sender = MllpSender(gw.mllp)
    codes, slowest = [], 0.0
    for i in range(12):
        started = time.monotonic()
        codes.append(sender.send(oru(f"FULL-{i}")))
        slowest = max(slowest, time.monotonic() - started)
    sender.close()
    accepted = codes.count("AA")
    # Quorum queues enforce reject-publish once over the limit: they may hold one more.
    assert accepted in (5, 6)
    assert codes == ["AA"] * accepted + ["AR"] * (12 - accepted)
    assert slowest < 2.0
    conn = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
    queue = conn.channel().queue_declare(broker_ns.names.queue("patient-record"), passive=True)
    conn.close()
    assert queue.method.message_count == accepted, "every AA is in the queue, nothing else"


def test_blocked_broker_answers_unavailable_at_once_and_recovers(pg_url, start_gateway):
    gw = start_gateway(database_url=pg_url)
    publisher = gw.services.publisher
    sender = MllpSender(gw.mllp)
    assert sender.send(oru("BLK-0")) == "AA"
    # What pika does on the broker's connection.blocked frame (a real memory alarm would
    # block every client of the shared broker, so the notification is delivered directly).
    publisher._on_blocked(None, None)
    try:
        started = time.monotonic()
        assert sender.send(oru("BLK-1")) == "AR"
        assert time.monotonic() - started < 1.0
    finally:
        publisher._on_unblocked(None, None)
    assert sender.send(oru("BLK-1")) == "AA"
    sender.close()


def test_a_connection_lost_while_blocked_does_not_leave_the_gateway_blocked(pg_url, start_gateway):
    """pika closes a connection blocked past its timeout (60 s), and a closed connection never
    hears "unblocked": the publisher stayed blocked for good, every document refused AR until
    a restart. The broker closing the blocked connection stands in for that timeout here."""
    gw = start_gateway(database_url=pg_url)
    publisher = gw.services.publisher
    sender = MllpSender(gw.mllp)
    assert sender.send(oru("LOST-0")) == "AA"
    connections = amqp_connections(os.getpid())
    publisher._on_blocked(None, None)  # as on the broker's connection.blocked frame
    assert sender.send(oru("LOST-1")) == "AR"
    close_connections(connections)
    wait_for(lambda: publisher.ready, 30, "the publisher reconnected and is not blocked")
    assert sender.send(oru("LOST-1")) == "AA"
    sender.close()
