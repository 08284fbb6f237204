"""Against the real RabbitMQ: the seal and the destinations it covers travel in the body, so a
sealed message moved to the retry queues, parked (its headers rebuilt each time) and replayed to
its recorded destination is still filed, and as verified; an unsealed one on the same path is
still refused."""

from __future__ import annotations

import threading

import pytest

from gateway.broker import names as h
from gateway.broker.consumer import Consumer, Delivery, RetryPolicy
from gateway.broker.message import COMPRESSED_FORMAT, FORMAT, DocumentMessage, encode
from gateway.broker.replay import Filter, replay
from gateway.config import Settings
from gateway.outcome import Accepted
from gateway.pipeline import Tools, ingest
from gateway.records.store import RecordStore
from gateway.records.worker import RecordWorker
from gateway.routing import loader
from gateway.signing import setup
from gateway.signing.xades import XadesSigner
from gateway.submission import Submission
from tests.broker.helpers import declared, depth, get_one, publish, wait_for, work_routing

pytestmark = pytest.mark.broker


class DownThenFiling:
    """The record worker behind a store that is down (every delivery fails, so it is retried,
    then parked) until ``up`` is set; records the headers each delivery came with."""

    def __init__(self, worker: RecordWorker) -> None:
        self.worker = worker
        self.up = threading.Event()
        self.seen: list[dict] = []
        self.failures: list[BaseException] = []

    def __call__(self, delivery: Delivery) -> None:
        self.seen.append(delivery.headers)
        if not self.up.is_set():
            raise RuntimeError("record store down")
        try:
            self.worker(delivery)
        except Exception as exc:
            self.failures.append(exc)
            raise


@pytest.mark.parametrize("fmt", [FORMAT, COMPRESSED_FORMAT])
def test_a_sealed_message_is_filed_after_retries_parking_and_replay(
    broker_ns, keys_dir, tmp_path, cda, fmt
):
    settings = Settings.from_env({"GATEWAY_KEYS_DIR": str(keys_dir)})
    key = setup.load_envelope_key(settings)
    tools = Tools(
        signer=XadesSigner(setup.load_key(settings)),
        routing=loader.parse(work_routing((100, 200))),
        seal_key=key,
    )
    accepted = ingest(Submission(raw=cda, transport="test", sender="test"), tools)
    assert isinstance(accepted, Accepted)
    env = accepted.envelope
    assert accepted.destinations == ("work",)
    message = DocumentMessage(env, accepted.payload)
    sealed = encode(message, fmt, seal_key=key, routed=accepted.destinations)

    table = declared(broker_ns, work_routing((100, 200)))
    store = RecordStore.open(f"sqlite:///{tmp_path / 'records.sqlite3'}")
    handler = DownThenFiling(
        RecordWorker(store, setup.load_verifier(settings), seal_key=key, files_for=("work",))
    )
    consumer = Consumer(
        broker_ns.url,
        broker_ns.names.queue("work"),
        handler,
        prefetch=4,
        policy=RetryPolicy.for_destination(table.destinations["work"], broker_ns.names),
    )
    consumer.start()
    try:
        assert consumer.consuming.wait(10)
        publish(broker_ns.url, broker_ns.names.exchange, "work", sealed, env.document_id)
        parking = broker_ns.names.queue("parking")
        assert wait_for(lambda: len(handler.seen) == 3), handler.seen  # first + two retries
        assert [s.get(h.ATTEMPT) for s in handler.seen] == [None, 1, 2]
        # parked with rebuilt headers and the body as published
        assert wait_for(lambda: depth(broker_ns.url, parking) == 1)
        handler.up.set()
        result = replay(broker_ns.url, broker_ns.names, parking)
        assert result.replayed == [(env.document_id, "work")], result
        assert wait_for(lambda: store.document(env.document_id) is not None), handler.failures
    finally:
        consumer.stop()
    assert handler.seen[-1].get(h.REPLAYED) == 1 and not handler.failures
    row = store.document(env.document_id)
    assert row["payload"] == accepted.payload and row["patient_ins"] == env.patient.ins
    assert row["signature_status"] == "verified"

    # The same path without a seal: retried, parked, replayed, and refused after all that.
    unsealed = encode(message, fmt)
    handler.up.clear()
    handler.failures.clear()
    consumer = Consumer(
        broker_ns.url,
        broker_ns.names.queue("work"),
        handler,
        prefetch=4,
        policy=RetryPolicy.for_destination(table.destinations["work"], broker_ns.names),
    )
    consumer.start()
    try:
        assert consumer.consuming.wait(10)
        publish(broker_ns.url, broker_ns.names.exchange, "work", unsealed, env.document_id)
        assert wait_for(lambda: depth(broker_ns.url, parking) == 1)
        handler.up.set()
        by_id = [Filter("document_id", env.document_id)]
        assert replay(broker_ns.url, broker_ns.names, parking, by_id).replayed
        props, body = get_one(broker_ns.url, parking)
    finally:
        consumer.stop()
        store.close()
    assert body == unsealed and "envelope has no seal" in props.headers[h.FAILURE]
