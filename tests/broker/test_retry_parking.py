"""Against the real RabbitMQ: a failing message is retried after each configured delay, then
parked with the reason in headers; poison is parked at once; replay brings it back; a message
no queue takes is parked and counted, never dropped."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.broker import names as h
from gateway.broker import topology
from gateway.broker.consumer import Consumer, Poison, RetryPolicy
from gateway.broker.publisher import OutboundMessage, Publisher
from gateway.broker.replay import Filter, replay
from tests.broker.helpers import declared, depth, get_one, publish, wait_for, work_routing

pytestmark = pytest.mark.broker

DELAYS_MS = (100, 300)


@pytest.fixture
def table(broker_ns):
    return declared(broker_ns, work_routing(DELAYS_MS))


class Flaky:
    """A handler that fails (how is up to the test) while ``failing`` is set."""

    def __init__(self, error: type[Exception] = RuntimeError) -> None:
        self.error = error
        self.failing = True
        self.calls: list[float] = []
        self.done = threading.Event()

    def __call__(self, delivery) -> None:
        self.calls.append(time.monotonic())
        if self.failing:
            raise self.error("boom: cannot file")
        self.done.set()


def consume(ns, table, handler) -> Consumer:
    dest = table.destinations["work"]
    consumer = Consumer(
        ns.url,
        ns.names.queue("work"),
        handler,
        prefetch=4,
        policy=RetryPolicy.for_destination(dest, ns.names),
    )
    consumer.start()
    assert consumer.consuming.wait(10)
    return consumer


def test_failure_is_retried_after_each_delay_then_parked_with_its_reason(broker_ns, table):
    handler = Flaky()
    consumer = consume(broker_ns, table, handler)
    try:
        publish(broker_ns.url, broker_ns.names.exchange, "work", b"{}")
        props, body = get_one(broker_ns.url, broker_ns.names.queue("parking"))
    finally:
        consumer.stop()
    assert len(handler.calls) == 3  # first delivery + one per delay
    gaps_ms = [(b - a) * 1000 for a, b in zip(handler.calls, handler.calls[1:], strict=False)]
    assert gaps_ms[0] >= DELAYS_MS[0] and gaps_ms[1] >= DELAYS_MS[1], gaps_ms
    assert gaps_ms[1] < 5000  # came back by TTL, not by some slow fallback
    headers = props.headers
    assert headers[h.FAILURE] == "RuntimeError: boom: cannot file"
    assert headers[h.ATTEMPT] == 3
    assert headers[h.DESTINATION] == "work"
    assert headers[h.FAILED_QUEUE] == broker_ns.names.queue("work")
    assert props.message_id == "doc-1" and body == b"{}"
    assert depth(broker_ns.url, broker_ns.names.queue("work")) == 0


def test_poison_is_parked_at_once(broker_ns, table):
    handler = Flaky(error=Poison)
    consumer = consume(broker_ns, table, handler)
    try:
        publish(broker_ns.url, broker_ns.names.exchange, "work", b"{}")
        props, _ = get_one(broker_ns.url, broker_ns.names.queue("parking"))
    finally:
        consumer.stop()
    assert len(handler.calls) == 1
    assert props.headers[h.FAILURE].startswith("Poison: ") and props.headers[h.ATTEMPT] == 1


def test_replay_sends_a_parked_message_back_and_it_succeeds(broker_ns, table):
    handler = Flaky(error=Poison)
    consumer = consume(broker_ns, table, handler)
    try:
        publish(broker_ns.url, broker_ns.names.exchange, "work", b"{}", message_id="doc-a")
        publish(broker_ns.url, broker_ns.names.exchange, "work", b"{}", message_id="doc-b")
        wait_for(lambda: depth(broker_ns.url, broker_ns.names.queue("parking")) == 2)
        handler.failing = False  # "after a fix"
        result = replay(
            broker_ns.url,
            broker_ns.names,
            broker_ns.names.queue("parking"),
            [Filter.parse("document_id=doc-b"), Filter.parse("failure~^Poison")],
        )
        assert result.replayed == [("doc-b", "work")] and result.skipped == 1
        assert handler.done.wait(10)
    finally:
        consumer.stop()
    assert len(handler.calls) == 3  # a, b, then b again
    props, _ = get_one(broker_ns.url, broker_ns.names.queue("parking"))
    assert props.message_id == "doc-a"  # the one the filter left is still parked


def test_replay_dry_run_moves_nothing(broker_ns, table):
    publish(broker_ns.url, broker_ns.names.exchange, "parking", b"{}")
    result = replay(
        broker_ns.url, broker_ns.names, broker_ns.names.queue("parking"), to="work", dry_run=True
    )
    assert result.replayed == [("doc-1", "work")]
    assert depth(broker_ns.url, broker_ns.names.queue("parking")) == 1
    assert depth(broker_ns.url, broker_ns.names.queue("work")) == 0


def test_unroutable_message_is_parked_and_counted_not_dropped(broker_ns, table):
    publisher = Publisher(
        broker_ns.url,
        topology.plan(table, broker_ns.names),
        parking=(broker_ns.names.exchange, "parking"),
    )
    publisher.start()
    try:
        message = OutboundMessage(broker_ns.names.exchange, "nobody-listens", b"x", "doc-u")
        assert publisher.publish([message]).result(timeout=10) is None
        assert publisher.unroutable_parked == 1
    finally:
        publisher.stop()
    props, body = get_one(broker_ns.url, broker_ns.names.queue("parking"))
    assert body == b"x" and props.message_id == "doc-u"
    assert props.headers[h.DESTINATION] == "nobody-listens"
    assert "Unroutable" in props.headers[h.FAILURE]
