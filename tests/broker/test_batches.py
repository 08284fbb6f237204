"""Against the real RabbitMQ: a Batched handler is given what arrived together, and each
delivery of a batch is settled by its own outcome (ack, requeue, retry, park)."""

from __future__ import annotations

import logging
import threading

import pytest

from gateway.broker import names as h
from gateway.broker.consumer import Batched, Consumer, Poison, RetryPolicy, Transient
from tests.broker.helpers import declared, depth, get_one, publish, wait_for, work_routing

pytestmark = pytest.mark.broker


@pytest.fixture
def table(broker_ns):
    return declared(broker_ns, work_routing((100,)))


class Recorder:
    """Done for every delivery but: ``poison`` (always Poison), ``flaky`` (Transient the first
    time, done the second) and ``failing`` (RuntimeError: retried, then parked)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.done: list[str] = []
        self.lock = threading.Lock()
        self.flaky_seen = False

    def __call__(self, deliveries):
        ids = [d.message_id for d in deliveries]
        outcomes: list[BaseException | None] = []
        with self.lock:
            self.batches.append(ids)
            for i in ids:
                if i == "poison":
                    outcomes.append(Poison("never fileable"))
                elif i == "flaky" and not self.flaky_seen:
                    self.flaky_seen = True
                    outcomes.append(Transient("store down for a moment"))
                elif i == "failing":
                    outcomes.append(RuntimeError("boom"))
                else:
                    self.done.append(i)
                    outcomes.append(None)
        return outcomes


def test_a_backlog_is_handled_in_batches_each_delivery_settled_by_its_outcome(broker_ns, table):
    ids = [f"doc-{n}" for n in range(40)]
    ids[5], ids[17], ids[30] = "poison", "flaky", "failing"
    for i in ids:  # a backlog before the consumer starts
        publish(broker_ns.url, broker_ns.names.exchange, "work", b"{}", message_id=i)
    recorder = Recorder()
    consumer = Consumer(
        broker_ns.url,
        broker_ns.names.queue("work"),
        Batched(recorder, size=8),
        prefetch=16,
        policy=RetryPolicy.for_destination(table.destinations["work"], broker_ns.names),
    )
    consumer.start()
    try:
        parked = [get_one(broker_ns.url, broker_ns.names.queue("parking")) for _ in range(2)]
        wait_for(lambda: "flaky" in recorder.done, timeout=15)
        wait_for(lambda: depth(broker_ns.url, broker_ns.names.queue("work")) == 0, timeout=10)
    finally:
        consumer.stop()
    sizes = [len(b) for b in recorder.batches]
    assert max(sizes) == 8 and all(s <= 8 for s in sizes), sizes
    # Every fileable delivery done exactly once: acks of a batch never ack another's.
    expected = sorted(i for i in ids if i not in ("poison", "failing"))
    assert sorted(recorder.done) == expected
    reasons = {props.message_id: props.headers for props, _ in parked}
    assert reasons["poison"][h.ATTEMPT] == 1
    assert reasons["poison"][h.FAILURE] == "Poison: never fileable"
    assert reasons["failing"][h.ATTEMPT] == 2  # the one retry of the policy, then parked
    assert reasons["failing"][h.FAILURE] == "RuntimeError: boom"
    assert depth(broker_ns.url, broker_ns.names.queue("parking")) == 0


def test_a_batch_handler_that_raises_settles_every_delivery_of_the_batch(broker_ns, table):
    for n in range(3):
        publish(broker_ns.url, broker_ns.names.exchange, "work", b"{}", message_id=f"d{n}")
    calls: list[int] = []

    def broken(deliveries):
        calls.append(len(deliveries))
        raise Poison("the batch cannot be read")

    consumer = Consumer(
        broker_ns.url,
        broker_ns.names.queue("work"),
        Batched(broken, size=8),
        policy=RetryPolicy.for_destination(table.destinations["work"], broker_ns.names),
    )
    consumer.start()
    try:
        parked = {
            get_one(broker_ns.url, broker_ns.names.queue("parking"))[0].message_id for _ in range(3)
        }
    finally:
        consumer.stop()
    assert parked == {"d0", "d1", "d2"}
    assert sum(calls) == 3
    assert depth(broker_ns.url, broker_ns.names.queue("work")) == 0


def test_a_consumer_that_fails_to_start_says_so_and_tries_again(broker_ns, table, caplog):
    """Past AMQP's 16-bit prefetch, basic_qos raises struct.error, not a broker error: the
    consumer thread ended silently while the gateway went on accepting documents."""
    caplog.set_level(logging.ERROR, logger="gateway")
    consumer = Consumer(
        broker_ns.url, broker_ns.names.queue("work"), Recorder(), prefetch=70000, name="t-fail"
    )
    consumer.start()
    try:
        assert wait_for(
            lambda: any(r.getMessage() == "consumer.failed" for r in caplog.records), timeout=10
        )
        assert consumer._thread.is_alive() and not consumer.consuming.is_set()
    finally:
        consumer.stop()
    failed = next(r for r in caplog.records if r.getMessage() == "consumer.failed")
    assert failed.fields["error"] == "error" and failed.fields["where"]  # struct.error
