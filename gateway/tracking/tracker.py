"""Tracker: the one door through which the service and the consumers report a message's steps.

Tracking is observability, not the durable path: it must never slow down nor fail an ingest.
``record`` only appends to a bounded in-memory queue; one writer thread drains it in batches
(one transaction each). When the queue is full or the database is down, events are dropped,
logged and counted (``passerelle_tracking_events_dropped``) — the document itself is unaffected.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable

from gateway.errors import StoreUnavailable
from gateway.logs import log
from gateway.tracking.events import Event
from gateway.tracking.store import TrackingStore

MAX_QUEUED = 10_000
BATCH = 500
# After its first event the writer waits this long for more, so that the steps of the
# messages in flight share one transaction: a message's steps are recorded one by one
# (received, judged, answered, filed), and writing each as it comes cost a transaction apiece
# at moderate rates. 250 ms rather than 50 cut the gateway's CPU by 5 % and PostgreSQL's by
# 18 % per raw ORU^R01 at 40 msg/s; 1 s saved little more and spread p99 (docs/performance.md,
# "Paired A/B"). Timelines show steps up to this much later; flush() and close() do not wait.
LINGER_S = 0.25
# A write is one transaction, so a failed one left nothing and is tried again after these
# pauses before its events are dropped: a deadlock with another gateway's writer or a
# connection lost by a database restart costs a pause, not the steps of ~30 messages.
RETRY_PAUSES_S = (0.1, 0.5)


class Tracker:
    """Records events; ``NullTracker`` is the do-nothing twin for tools that track nothing."""

    def record(self, events: Event | Iterable[Event]) -> None:
        raise NotImplementedError

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def close(self) -> None:
        pass


class NullTracker(Tracker):
    def record(self, events: Event | Iterable[Event]) -> None:
        pass


class BufferedTracker(Tracker):
    def __init__(
        self,
        store: TrackingStore,
        on_drop: Callable[[int], None] | None = None,
        max_queued: int = MAX_QUEUED,
        linger_s: float = LINGER_S,
    ) -> None:
        self._store = store
        self._linger = linger_s
        self._on_drop = on_drop
        self._max = max_queued
        self._queue: collections.deque[Event] = collections.deque()
        self._in_flight = 0
        self._flushing = 0  # callers waiting in flush(): write now, do not linger
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="tracking-writer", daemon=True)
        self._thread.start()

    def record(self, events: Event | Iterable[Event]) -> None:
        batch = [events] if isinstance(events, Event) else list(events)
        with self._cond:
            first = not self._queue
            room = self._max - len(self._queue)
            self._queue.extend(batch[: max(room, 0)])
            if first or len(self._queue) >= BATCH:  # else the writer is lingering or busy
                self._cond.notify_all()  # the writer, not only a flush() that waits too
        if len(batch) > room:
            self._dropped(len(batch) - max(room, 0), "queue full")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event recorded so far is written (or dropped). Tests and shutdown."""
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._queue and not self._in_flight, timeout)
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                self._cond.wait_for(
                    lambda: len(self._queue) >= BATCH or self._closing or self._flushing,
                    self._linger,
                )
                if not self._queue and self._closing:
                    return
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                self._in_flight = len(batch)
            try:
                self._write(batch)
            except StoreUnavailable as exc:
                self._dropped(len(batch), str(exc))
            except Exception as exc:  # a bug here must not kill tracking for good
                self._dropped(len(batch), type(exc).__name__)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _write(self, batch: list[Event]) -> None:
        for pause in RETRY_PAUSES_S:
            try:
                self._store.write(batch)
                return
            except StoreUnavailable:
                if self._closing:
                    raise
                time.sleep(pause)
        self._store.write(batch)

    def _dropped(self, count: int, reason: str) -> None:
        log("tracking.dropped", level=30, count=count, reason=reason)
        if self._on_drop:
            self._on_drop(count)
