"""tracked() reports what the consumer did, against the real RabbitMQ: a failure sent to a retry
queue is "retrying" (attempt, delay), never "parked"; "parked" comes only once the parking copy
is in the parking queue; a requeue (store down) is counted, not tracked."""

from __future__ import annotations

import threading

import pytest

from gateway.broker.consumer import Consumer, RetryPolicy, Transient
from gateway.metrics import Metrics
from gateway.tracking import events
from gateway.tracking.consumer import tracked
from gateway.tracking.tracker import Tracker
from tests.broker.helpers import declared, depth, publish, wait_for, work_routing

pytestmark = pytest.mark.broker

DELAYS_MS = (100, 300)


class Recording(Tracker):
    """Keeps the events; for each "parked", how many messages the parking queue held then."""

    def __init__(self, parking_depth) -> None:
        self.events: list[events.Event] = []
        self.parking_when_parked: list[int] = []
        self._parking_depth = parking_depth
        self._lock = threading.Lock()

    def record(self, recorded) -> None:
        batch = [recorded] if isinstance(recorded, events.Event) else list(recorded)
        for event in batch:
            if event.name == events.PARKED:
                self.parking_when_parked.append(self._parking_depth())
        with self._lock:
            self.events.extend(batch)

    def names(self) -> list[str]:
        with self._lock:
            return [e.name for e in self.events]


class Failing:
    """Fails its first ``times`` deliveries with ``error``, then succeeds."""

    def __init__(self, times: int, error: type[Exception] = RuntimeError) -> None:
        self.times, self.error, self.calls = times, error, 0

    def __call__(self, delivery) -> None:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error("cannot file now")


def run(ns, handler, until, tracker: Recording, metrics: Metrics) -> None:
    table = declared(ns, work_routing(DELAYS_MS))
    consumer = Consumer(
        ns.url,
        ns.names.queue("work"),
        tracked(handler, "work", tracker, metrics),
        prefetch=4,
        policy=RetryPolicy.for_destination(table.destinations["work"], ns.names),
    )
    consumer.start()
    try:
        assert consumer.consuming.wait(10)
        publish(ns.url, ns.names.exchange, "work", b"{}")
        wait_for(until, 20, "the expected steps")
    finally:
        consumer.stop()


def counted(metrics: Metrics, outcome: str) -> float:
    labels = {"consumer": "work", "outcome": outcome}
    return metrics.registry.get_sample_value("passerelle_consumer_messages_total", labels) or 0


@pytest.fixture
def tracker(broker_ns):
    return Recording(lambda: depth(broker_ns.url, broker_ns.names.queue("parking")))


def test_a_retried_failure_is_tracked_as_retrying_then_filed(broker_ns, tracker):
    metrics = Metrics()
    run(broker_ns, Failing(1), lambda: events.FILED in tracker.names(), tracker, metrics)
    assert tracker.names() == [events.RETRYING, events.FILED]
    retry = tracker.events[0].detail
    assert retry["attempt"] == 1 and retry["delay_ms"] == DELAYS_MS[0]
    assert retry["reason"] == "RuntimeError: cannot file now"
    assert counted(metrics, "retrying") == 1 and counted(metrics, "handled") == 1
    assert counted(metrics, "parked") == 0


def test_parked_is_tracked_only_once_the_parking_copy_is_there(broker_ns, tracker):
    metrics = Metrics()
    run(broker_ns, Failing(99), lambda: events.PARKED in tracker.names(), tracker, metrics)
    assert tracker.names() == [events.RETRYING, events.RETRYING, events.PARKED]
    assert [e.detail["delay_ms"] for e in tracker.events[:2]] == list(DELAYS_MS)
    assert tracker.parking_when_parked == [1]
    assert counted(metrics, "retrying") == 2 and counted(metrics, "parked") == 1


def test_a_requeue_is_counted_not_tracked(broker_ns, tracker):
    metrics = Metrics()
    run(broker_ns, Failing(1, Transient), lambda: tracker.names(), tracker, metrics)
    assert tracker.names() == [events.FILED]
    assert counted(metrics, "requeued") == 1 and counted(metrics, "parked") == 0
