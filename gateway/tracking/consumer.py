"""tracked(handler): a consumer handler whose deliveries' fates are tracked and counted.

Wraps a consumer handler (plain or Batched) without changing it: the handler's own contract
(done → ack, Transient → requeue, anything else → retry/park) decides. What is reported is
what the consumer then did, told once the broker confirmed it (``Batched.on_settled``), not
the handler's outcome: a failure may be retried, parked, requeued or rejected, and a message
is "parked" only once its copy in the parking queue is confirmed (an operator can replay it).

    done      → step "filed",     metric outcome "handled"
    retrying  → step "retrying" (attempt, delay, reason; the status stays), metric "retrying"
    parked    → step "parked",    metric "parked"
    rejected  → step "given-up" (the queue's own dead-lettering decides), metric "rejected"
    requeued  → no step (a store outage would write one per pause), metric "requeued"

The trace id is the delivery's correlation id; the lag is measured from the
``x-received-at`` header every document message carries.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.broker.consumer import Batched, Delivery, Disposition, Handler, Settled, batched
from gateway.metrics import Metrics
from gateway.tracking import events
from gateway.tracking.tracker import Tracker

METRIC_OUTCOMES = {
    Disposition.DONE: "handled",
    Disposition.RETRYING: "retrying",
    Disposition.PARKED: "parked",
    Disposition.REQUEUED: "requeued",
    Disposition.REJECTED: "rejected",
}


def tracked(
    handler: Handler | Batched, destination: str, tracker: Tracker, metrics: Metrics
) -> Batched:
    inner = batched(handler)

    def observe(delivery: Delivery, settled: Settled) -> None:
        if inner.on_settled is not None:
            inner.on_settled(delivery, settled)
        _observe(delivery, settled, destination, tracker, metrics)

    return Batched(inner.handler, inner.size, observe)


def _observe(
    delivery: Delivery, settled: Settled, destination: str, tracker: Tracker, metrics: Metrics
) -> None:
    disposition = settled.disposition
    final = disposition in (Disposition.DONE, Disposition.PARKED)  # the lag is to the end
    metrics.observe_consumed(
        destination, METRIC_OUTCOMES[disposition], _lag(delivery) if final else None
    )
    trace_id = delivery.correlation_id
    if not trace_id:
        return
    reason = settled.reason or ""
    if disposition is Disposition.DONE:
        tracker.record(events.filed(trace_id, destination, delivery.message_id))
    elif disposition is Disposition.PARKED:
        tracker.record(events.parked(trace_id, destination, reason))
    elif disposition is Disposition.RETRYING:
        tracker.record(
            events.retrying(trace_id, destination, settled.attempt, settled.delay_ms, reason)
        )
    elif disposition is Disposition.REJECTED:
        tracker.record(events.given_up(trace_id, destination, reason))


def _lag(delivery: Delivery) -> float | None:
    stamp = delivery.headers.get("x-received-at")
    if not isinstance(stamp, str | bytes):
        return None
    try:
        received = datetime.fromisoformat(stamp.decode() if isinstance(stamp, bytes) else stamp)
    except ValueError:
        return None
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return (datetime.now(UTC) - received).total_seconds()
