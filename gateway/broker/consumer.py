"""Consumer: one thread, one blocking connection, manual acks decided in one place.

The handler does the work and says how it went by returning or raising:

    returns normally        → ack (the work is committed)
    raises Transient        → nack + requeue, then pause: the store is down, try again later
    raises Poison           → parked at once: it can never succeed as it is
    raises anything else    → retried after each delay of the destination's retry policy,
                              then parked

A ``Batched`` handler is given what has arrived (up to its size) at once and answers with one
outcome per delivery, None for done and the exception otherwise, each settled as above (one
transaction and one ack for many documents instead of one each). Raising instead applies to
the whole batch. A plain handler is a batch handler of size 1.

"Retried" means copied into the retry queue of that attempt (its TTL brings it back) and
acked; "parked" means copied to the destination's dead-letter target with the failure reason
in headers (names.FAILURE …) and acked. Both copies are confirmed before the ack, so a crash in
between gives a duplicate, never a loss (filing is idempotent by document id). With no
dead-letter target the message is rejected, and the queue's own policy applies. A failure that
waiting cannot fix (Poison, or the database refusing the data itself: failure.permanent) is
parked without retries. The failure text in headers and logs is failure.describe's: classes
and a message without patient data, never a statement's parameters.

What the consumer did with each delivery, once the broker confirmed it, is told to the
Batched's ``on_settled`` (a Settled: done, retrying with attempt and delay, parked, requeued,
rejected): tracking and metrics report that, not the handler's outcome.

No handler ever touches the channel. Reconnects by itself with backoff.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pika
import pika.exceptions

from gateway.broker import names as h
from gateway.broker.connection import parameters, redact
from gateway.broker.failure import describe, permanent
from gateway.broker.message import moved
from gateway.broker.names import Names
from gateway.errors import StoreUnavailable
from gateway.logs import frames, log

RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# How long the first delivery of a batch waits for others. pika reads 4 KB per socket read,
# so a 130 KB document arrives over dozens of reads: without a wait, batches of large
# documents were of 1.2 on average. At moderate rates a longer wait lets the documents of a
# few messages share one commit, one relay and one tracking write: 50 ms rather than 5 saved
# 2-3 ms of CPU per document at 35-40 msg/s; 100 ms rather than 50 (with the tracker's 250 ms)
# saved another 16 % of the gateway's CPU and 40 % of PostgreSQL's per raw ORU^R01 at 30 msg/s,
# p50 and p99 unchanged, 200 ms more but worse p99 (docs/performance.md, "Paired A/B"). Documents
# are filed up to this much later. With a backlog, batches fill at once and never wait.
BATCH_LINGER_S = 0.1
TRANSIENT_PAUSE_S = (0.5, 1.0, 2.0, 5.0, 10.0)


class Poison(Exception):
    """This message can never be processed as it is; park it."""


Transient = StoreUnavailable


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    message_id: str | None
    correlation_id: str | None
    headers: dict
    redelivered: bool
    routing_key: str


Handler = Callable[[Delivery], None]
# One outcome per delivery, in order: None (done) or the exception it ended with.
BatchHandler = Callable[[Sequence[Delivery]], Sequence[BaseException | None]]


class Disposition(enum.StrEnum):
    """What the consumer did with a delivery (after the broker confirmed any copy)."""

    DONE = "done"  # acked: the handler's work is committed
    RETRYING = "retrying"  # copied to the retry queue of its attempt, then acked
    PARKED = "parked"  # copied to the dead-letter target (parking), then acked
    REQUEUED = "requeued"  # nacked back to its own queue: the store is down, or a move failed
    REJECTED = "rejected"  # no dead-letter target: rejected, the queue's own policy decides


@dataclass(frozen=True, slots=True)
class Settled:
    disposition: Disposition
    attempt: int = 0  # failed deliveries so far, this one included (0 when done)
    delay_ms: int | None = None  # RETRYING: when it comes back
    reason: str | None = None  # failure.describe of what failed: no patient data
    queue: str | None = None  # RETRYING / PARKED: where the copy went


SettledObserver = Callable[[Delivery, Settled], None]


@dataclass(frozen=True, slots=True)
class Batched:
    """A handler that takes up to ``size`` deliveries at once (see the module docstring);
    ``on_settled`` is told what became of each (it must not raise, and must not block)."""

    handler: BatchHandler
    size: int = 32
    on_settled: SettledObserver | None = None


def batched(handler: Handler | Batched) -> Batched:
    """``handler`` as a Batched one: a plain handler becomes a batch handler of size 1."""
    return handler if isinstance(handler, Batched) else Batched(one_by_one(handler), 1)


def one_by_one(handler: Handler) -> BatchHandler:
    """``handler`` as a batch handler. After a Transient the rest are not attempted: they get
    the same outcome (requeued), as the store is down for them too."""

    def handle(deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for delivery in deliveries:
            if outcomes and isinstance(outcomes[-1], Transient):
                outcomes.append(outcomes[-1])
                continue
            try:
                handler(delivery)
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    return handle


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Where a destination's failed messages go: retry queues in order, then dead letter."""

    destination: str
    retry_queues: tuple[str, ...] = ()  # one per attempt, each with its delay as TTL
    dead_letter_exchange: str | None = None
    dead_letter_key: str | None = None  # the destination that receives what is given up
    retry_delays_ms: tuple[int, ...] = ()  # the TTL of each retry queue, in the same order

    @classmethod
    def for_destination(cls, dest, names: Names) -> RetryPolicy:
        return cls(
            destination=dest.name,
            retry_queues=tuple(names.retry_queue(dest.queue, d) for d in dest.retry_delays_ms),
            retry_delays_ms=tuple(dest.retry_delays_ms),
            dead_letter_exchange=names.dead_letter_exchange if dest.dead_letter else None,
            dead_letter_key=dest.dead_letter,
        )


class Consumer:
    def __init__(
        self,
        url: str,
        queue: str,
        handler: Handler | Batched,
        prefetch: int = 32,
        name: str = "consumer",
        policy: RetryPolicy | None = None,
    ) -> None:
        self._url = url
        self._policy = policy
        self._queue = queue
        self._batched = batched(handler)
        self._pending: list[tuple[object, object, Delivery]] = []  # (method, properties, delivery)
        self._prefetch = prefetch
        self._name = name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._transient_streak = 0
        self.consuming = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        conn = self._connection
        if conn is not None:
            # Wakes the consuming loop, which sees _stopping and closes the connection (the
            # broker requeues whatever was delivered and not acked). It may be closing already.
            with contextlib.suppress(Exception):
                conn.add_callback_threadsafe(lambda: None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delays = iter(RECONNECT_DELAYS_S)
        while not self._stopping.is_set():
            try:
                self._connection = pika.BlockingConnection(parameters(self._url))
                channel = self._channel = self._connection.channel()
                channel.basic_qos(prefetch_count=self._prefetch)
                channel.confirm_delivery()  # retry and parking copies are confirmed before ack
                channel.basic_consume(self._queue, self._on_message)
                log("consumer.started", component=self._name, queue=self._queue)
                delays = iter(RECONNECT_DELAYS_S)
                self.consuming.set()
                self._consume(channel)
            except (pika.exceptions.AMQPError, OSError) as exc:
                if self._stopping.is_set():
                    break
                log(
                    "consumer.disconnected",
                    level=30,
                    component=self._name,
                    error=type(exc).__name__,
                    url=redact(self._url),
                )
            except Exception as exc:
                # Anything else (a channel setting the broker cannot take, a bug) would end the
                # thread silently while the gateway goes on accepting: say it, start again.
                log(
                    "consumer.failed",
                    level=40,
                    component=self._name,
                    error=type(exc).__name__,
                    where=frames(exc),
                )
            finally:
                self.consuming.clear()
                self._pending.clear()  # not acked: the broker redelivers them
                self._channel = None
                conn, self._connection = self._connection, None
                if conn is not None and conn.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                        conn.close()
            self._stopping.wait(next(delays, RECONNECT_DELAYS_S[-1]))

    def _consume(self, channel) -> None:
        """Deliveries are collected as they arrive, then handled together: whatever arrives
        within BATCH_LINGER_S of the first, up to the batch size (with a backlog, the prefetch
        window). A lone delivery waits at most that long, without spinning."""
        connection, size = self._connection, self._batched.size
        while not self._stopping.is_set() and channel.is_open and channel.consumer_tags:
            connection.process_data_events(time_limit=0.5)
            if 0 < len(self._pending) < size:
                deadline = time.monotonic() + BATCH_LINGER_S
                while len(self._pending) < size and (left := deadline - time.monotonic()) > 0:
                    connection.process_data_events(time_limit=left)  # returns on a delivery
            while self._pending and not self._stopping.is_set():
                batch, self._pending = self._pending[:size], self._pending[size:]
                self._handle(channel, batch)

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        delivery = Delivery(
            body=body,
            message_id=properties.message_id,
            correlation_id=properties.correlation_id,
            headers=dict(properties.headers or {}),
            redelivered=method.redelivered,
            routing_key=method.routing_key,
        )
        self._pending.append((method, properties, delivery))

    def _handle(self, channel, batch: list[tuple[object, object, Delivery]]) -> None:
        deliveries = [d for _, _, d in batch]
        try:
            outcomes = list(self._batched.handler(deliveries))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} deliveries")
        except Exception as exc:
            outcomes = [exc] * len(batch)
        done = Settled(Disposition.DONE)
        if all(o is None for o in outcomes):
            self._transient_streak = 0
            channel.basic_ack(batch[-1][0].delivery_tag, multiple=True)  # the batch, in order
            for delivery in deliveries:
                self._settled(delivery, done)
            return
        transient: BaseException | None = None
        for (method, properties, delivery), outcome in zip(batch, outcomes, strict=True):
            if outcome is None:
                channel.basic_ack(method.delivery_tag)
                self._settled(delivery, done)
            elif isinstance(outcome, Transient):
                channel.basic_nack(method.delivery_tag, requeue=True)
                transient = outcome
                attempt = int(delivery.headers.get(h.ATTEMPT) or 0)
                self._settled(
                    delivery, Settled(Disposition.REQUEUED, attempt, reason=describe(outcome))
                )
            else:
                self._failed(channel, method, properties, delivery, outcome)
        if transient is None:
            self._transient_streak = 0
            return
        pause = TRANSIENT_PAUSE_S[min(self._transient_streak, len(TRANSIENT_PAUSE_S) - 1)]
        self._transient_streak += 1
        log(
            "consumer.transient",
            level=30,
            component=self._name,
            trace_id=batch[0][2].correlation_id,
            count=sum(isinstance(o, Transient) for o in outcomes),
            reason=describe(transient),
            delay_ms=int(pause * 1000),
        )
        self._connection.sleep(pause)  # keeps heartbeats going while we wait

    def _settled(self, delivery: Delivery, settled: Settled) -> None:
        """Tell the observer; what it does (tracking, metrics) never stops the consumer."""
        observer = self._batched.on_settled
        if observer is None:
            return
        try:
            observer(delivery, settled)
        except Exception as exc:
            log("consumer.observer-failed", level=40, component=self._name, error=describe(exc))

    def _failed(self, channel, method, properties, delivery: Delivery, exc: Exception) -> None:
        policy = self._policy
        attempt = int(delivery.headers.get(h.ATTEMPT) or 0) + 1
        reason = describe(exc)
        final = isinstance(exc, Poison) or permanent(exc)
        retries = policy.retry_queues if policy and not final else ()
        delay_ms: int | None = None
        if attempt <= len(retries):
            target, key, disposition = "", retries[attempt - 1], Disposition.RETRYING
            delays = policy.retry_delays_ms
            delay_ms = delays[attempt - 1] if attempt <= len(delays) else None
        elif policy and policy.dead_letter_key:
            target, key = policy.dead_letter_exchange, policy.dead_letter_key
            disposition = Disposition.PARKED
        else:
            target = key = None
            disposition = Disposition.REJECTED
        log(
            f"consumer.{disposition.value}",
            level=30 if disposition is Disposition.RETRYING else 40,
            component=self._name,
            trace_id=delivery.correlation_id,
            document_id=delivery.message_id,
            attempt=attempt,
            delay_ms=delay_ms,
            error=type(exc).__name__,
            reason=reason[:200],
        )
        if key is None:
            channel.basic_reject(method.delivery_tag, requeue=False)  # the queue's DLX decides
            self._settled(delivery, Settled(disposition, attempt, reason=reason))
            return
        headers = {
            **delivery.headers,
            h.ATTEMPT: attempt,
            h.FAILURE: reason,
            h.FAILED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
            h.FAILED_QUEUE: self._queue,
            h.DESTINATION: delivery.headers.get(h.DESTINATION) or policy.destination,
        }
        try:
            channel.basic_publish(
                target, key, delivery.body, moved(properties, headers), mandatory=True
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            log("consumer.move-failed", level=40, component=self._name, queue=key)
            channel.basic_nack(method.delivery_tag, requeue=True)
            failed = f"not moved to {key}: {reason}"
            self._settled(delivery, Settled(Disposition.REQUEUED, attempt - 1, reason=failed))
            self._connection.sleep(TRANSIENT_PAUSE_S[-1])
            return
        channel.basic_ack(method.delivery_tag)
        self._settled(delivery, Settled(disposition, attempt, delay_ms, reason, key))
