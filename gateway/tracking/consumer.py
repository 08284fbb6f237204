"""tracked(handler): a consumer handler that also reports filed/parked steps and lag.

Wraps any consumer Handler without changing it: the handler's own contract (return → ack,
Transient → requeue, anything else → park) decides; this only watches which way it went.
The trace id is the delivery's correlation id; the lag is measured from the
``x-received-at`` header every document message carries.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.broker.consumer import Delivery, Handler, Transient
from gateway.metrics import Metrics
from gateway.tracking import events
from gateway.tracking.tracker import Tracker


def tracked(handler: Handler, destination: str, tracker: Tracker, metrics: Metrics) -> Handler:
    def handle(delivery: Delivery) -> None:
        trace_id = delivery.correlation_id
        try:
            handler(delivery)
        except Transient:
            metrics.observe_consumed(destination, "retried", None)
            raise
        except Exception as exc:
            metrics.observe_consumed(destination, "parked", _lag(delivery))
            if trace_id:
                tracker.record(events.parked(trace_id, destination, str(exc)))
            raise
        metrics.observe_consumed(destination, "handled", _lag(delivery))
        if trace_id:
            tracker.record(events.filed(trace_id, destination, delivery.message_id))

    return handle


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
