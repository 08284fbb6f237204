"""tracked(handler): a consumer handler that also reports filed/parked steps and lag.

Wraps a consumer handler (plain or Batched) without changing it: the handler's own contract
(done → ack, Transient → requeue, anything else → retry/park) decides; this only watches
which way each delivery went.
The trace id is the delivery's correlation id; the lag is measured from the
``x-received-at`` header every document message carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from gateway.broker.consumer import Batched, Delivery, Handler, Transient, batched
from gateway.metrics import Metrics
from gateway.tracking import events
from gateway.tracking.tracker import Tracker


def tracked(
    handler: Handler | Batched, destination: str, tracker: Tracker, metrics: Metrics
) -> Batched:
    inner = batched(handler)

    def handle(deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        try:
            outcomes = list(inner.handler(deliveries))
        except Exception as exc:  # the whole batch ended so
            outcomes = [exc] * len(deliveries)
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            _observe(delivery, outcome, destination, tracker, metrics)
        return outcomes

    return Batched(handle, inner.size)


def _observe(
    delivery: Delivery,
    outcome: BaseException | None,
    destination: str,
    tracker: Tracker,
    metrics: Metrics,
) -> None:
    trace_id = delivery.correlation_id
    if isinstance(outcome, Transient):
        metrics.observe_consumed(destination, "retried", None)
    elif outcome is not None:
        metrics.observe_consumed(destination, "parked", _lag(delivery))
        if trace_id:
            tracker.record(events.parked(trace_id, destination, str(outcome)))
    else:
        metrics.observe_consumed(destination, "handled", _lag(delivery))
        if trace_id:
            tracker.record(events.filed(trace_id, destination, delivery.message_id))


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
