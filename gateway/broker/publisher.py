"""Publishers: persistent, mandatory publishes that count only once RabbitMQ confirmed them.

Confirms are pipelined: many publishes are in flight at once and each batch's future resolves
when the broker acknowledged every message of it — or fails with BrokerUnavailable (nack,
connection lost, broker blocked) or Unroutable (returned: no queue bound). With a parking
route, a returned message is instead published again to parking (header names.FAILURE says
why), counted in ``unroutable_parked``, and the batch succeeds once that copy is confirmed:
durable, never silently dropped. The connection comes back by itself with backoff; the
topology is declared again each time it does.

ConfirmedChannel holds that bookkeeping, whoever runs the connection (pika connections are
not thread-safe: one owner each). ``Publisher`` here: a thread of its own owns a pika
SelectConnection and any thread hands it work (blocking callers: the filing child, tools).
``gateway.broker.loop_publisher.LoopPublisher``: the gateway's event loop owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.spec import Basic

from gateway.broker import names as h
from gateway.broker.connection import parameters, redact
from gateway.broker.topology import Declaration, declare_at
from gateway.errors import BrokerUnavailable, Unroutable
from gateway.logs import log

PUBLISH_ID = "x-publish-id"
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    correlation_id: str | None = None
    content_type: str = "application/json"
    type: str = "document"
    headers: dict = field(default_factory=dict)


class Coalescing:
    """Mixin for a pika connection: the frames emitted in one turn of its loop leave in one
    write. pika hands its transport each frame as a chunk of its own (method, header and
    body: three per message) and sends chunks one ``send()`` each: six system calls into
    RabbitMQ's socket per lab report (two destinations) where one does."""

    def __init__(self, *args, **kwargs) -> None:
        self._unsent: list[bytes] = []
        super().__init__(*args, **kwargs)

    def _adapter_emit_data(self, data: bytes) -> None:
        if not self._unsent:
            self.ioloop.call_later(0, self._flush)
        self._unsent.append(data)

    def _flush(self) -> None:
        data, self._unsent = b"".join(self._unsent), []
        if self._transport is not None:  # else the connection is lost: _lost failed its batches
            super()._adapter_emit_data(data)


class _Connection(Coalescing, SelectConnection):
    pass


@dataclass
class _Batch:
    id: str
    future: Future | asyncio.Future
    remaining: int
    returned: list[str] = field(default_factory=list)
    nacked: bool = False


class ConfirmedChannel:
    """One pika connection and its confirm-mode channel: what to declare, what is in flight,
    how confirms, returns and losses settle it. A runner subclass owns the connection and
    calls these callbacks on the connection's own thread; it says how a connection's end is
    signalled (``_ended``)."""

    def __init__(
        self,
        url: str,
        topology: Sequence[Declaration] = (),
        on_state: Callable[[bool], None] | None = None,
        parking: tuple[str, str] | None = None,
    ) -> None:
        self._url = url
        self._topology = list(topology)
        self._parking = parking  # (exchange, routing key) for returned messages
        self.unroutable_parked = 0  # returned messages kept in parking (a metric)
        self._on_state = on_state
        self._stopping = threading.Event()
        self._first_attempt = threading.Event()
        self._first_error: str | None = None
        self._connection = None
        self._channel = None
        self._ready = False
        self._was_connected = False
        self._blocked = False
        self._tags = itertools.count(1)
        self._pending: OrderedDict[int, _Batch] = OrderedDict()
        self._batches: dict[str, _Batch] = {}
        self._delays = iter(RECONNECT_DELAYS_S)

    @property
    def ready(self) -> bool:
        return self._ready and not self._blocked

    def set_topology(
        self, topology: Sequence[Declaration], parking: tuple[str, str] | None = None
    ) -> None:
        """What to declare on the next (re)connection, after routing.yaml was reloaded."""
        self._topology = list(topology)
        self._parking = parking

    def _refusal(self) -> BrokerUnavailable | None:
        """Why a publish cannot be taken now, if it cannot."""
        if not self._ready or self._connection is None:
            return BrokerUnavailable("not connected to RabbitMQ")
        if self._blocked:
            return BrokerUnavailable("RabbitMQ is blocking publishers (resource alarm)")
        return None

    def _ended(self, connection) -> None:
        """The connection is closed, or could not open: its runner takes it from here."""
        raise NotImplementedError

    def _first_connection(self, timeout: float) -> None:
        """Wait for the runner's first attempt; BrokerUnavailable (the runner stopped) when it
        failed or did not finish in ``timeout``."""
        if not self._first_attempt.wait(timeout):
            self.stop()
            raise BrokerUnavailable(f"RabbitMQ at {redact(self._url)} did not answer in {timeout}s")
        if self._first_error:
            self.stop()
            raise BrokerUnavailable(self._first_error)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection; the runner ends (each runner says how)."""
        raise NotImplementedError

    def _callbacks(self) -> dict:
        """A new connection's callbacks, whichever its kind."""
        return {
            "on_open_callback": self._on_open,
            "on_open_error_callback": self._on_open_error,
            "on_close_callback": self._on_closed,
        }

    def _retry_delay(self) -> float | None:
        """After a connection ended or could not be made: how long to wait before the next
        attempt, or None to give up (stopping; or the first attempt failed, which start()
        reports: no retry loop behind a gateway that never started)."""
        if self._was_connected:  # a working connection dropped: backoff starts over
            self._was_connected = False
            self._delays = iter(RECONNECT_DELAYS_S)
        if self._stopping.is_set() or self._first_error is not None:
            return None
        delay = next(self._delays, RECONNECT_DELAYS_S[-1])
        log("broker.reconnecting", level=30, component="publisher", delay_ms=int(delay * 1000))
        return delay

    # -- the connection's thread --------------------------------------------------------

    def _declare_topology(self) -> None:
        if self._topology:
            declare_at(self._url, self._topology)

    def _attempt_failed(self, reason: str) -> None:
        if not self._first_attempt.is_set():
            self._first_error = reason
            self._first_attempt.set()

    def _on_open(self, connection) -> None:
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection, error: BaseException) -> None:
        self._attempt_failed(
            f"cannot reach RabbitMQ at {redact(self._url)} ({type(error).__name__})"
        )
        self._ended(connection)

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        self._tags = itertools.count(1)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame) -> None:
        self._ready = True
        self._was_connected = True
        self._first_attempt.set()
        log("broker.connected", component="publisher", url=redact(self._url))
        if self._on_state:
            self._on_state(True)

    def _on_blocked(self, _conn, _frame) -> None:
        self._blocked = True
        log("broker.blocked", level=30, component="publisher")

    def _on_unblocked(self, _conn, _frame) -> None:
        self._blocked = False
        log("broker.unblocked", component="publisher")

    def _on_channel_closed(self, _channel, reason: BaseException) -> None:
        self._lost(f"channel closed: {reason!r}")
        conn = self._connection
        if conn is not None and conn.is_open:
            conn.close()

    def _on_closed(self, connection, reason: BaseException) -> None:
        self._lost(f"connection closed: {type(reason).__name__}")
        self._ended(connection)

    def _lost(self, reason: str) -> None:
        was_ready = self._ready
        self._ready = False
        # "Blocked" was said of the connection now gone (pika closes one blocked past its
        # timeout, which then never hears "unblocked"); the next is told again if need be.
        self._blocked = False
        self._channel = None
        pending = list(self._batches.values())
        self._pending.clear()
        self._batches.clear()
        for batch in pending:
            if not batch.future.done():
                batch.future.set_exception(BrokerUnavailable(f"RabbitMQ {reason}; not confirmed"))
        if was_ready and self._stopping.is_set() and not pending:
            log("broker.closed", component="publisher")  # our own clean stop: no warning
        elif was_ready:
            log(
                "broker.disconnected",
                level=30,
                component="publisher",
                reason=reason,
                count=len(pending),
            )
            if self._on_state:
                self._on_state(False)

    def _close(self) -> None:
        conn = self._connection
        if conn is None or conn.is_closing:
            return
        if conn.is_closed:
            self._ended(conn)
            return
        try:
            conn.close()  # then _on_closed
        except pika.exceptions.ConnectionWrongStateError:
            self._ended(conn)

    def _publish_now(self, messages: Sequence[OutboundMessage], future) -> None:
        """On the connection's thread; ``future`` is a concurrent or an asyncio Future."""
        channel = self._channel
        if channel is None or not channel.is_open or not self._ready:
            future.set_exception(BrokerUnavailable("not connected to RabbitMQ"))
            return
        batch_id = uuid.uuid4().hex
        batch = _Batch(batch_id, future, remaining=len(messages))
        self._batches[batch_id] = batch
        try:
            for m in messages:
                props = pika.BasicProperties(
                    content_type=m.content_type,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=m.message_id,
                    correlation_id=m.correlation_id,
                    type=m.type,
                    headers={**m.headers, PUBLISH_ID: batch_id},
                )
                channel.basic_publish(m.exchange, m.routing_key, m.body, props, mandatory=True)
                self._pending[next(self._tags)] = batch
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._batches.pop(batch_id, None)
            if not future.done():
                future.set_exception(BrokerUnavailable(f"publish failed: {type(exc).__name__}"))

    def _on_return(self, channel, method: Basic.Return, properties, body) -> None:
        # RabbitMQ sends basic.return before the message's confirm, so the batch is still open.
        headers = properties.headers or {}
        batch = self._batches.get(headers.get(PUBLISH_ID, ""))
        if batch is None:
            return
        if self._parking is None or (method.exchange, method.routing_key) == self._parking:
            batch.returned.append(method.routing_key)
            return
        exchange, key = self._parking
        properties.headers = {
            **headers,
            h.FAILURE: f"Unroutable: no queue bound for routing key {method.routing_key!r}",
            h.DESTINATION: method.routing_key,
        }
        try:
            channel.basic_publish(exchange, key, body, properties, mandatory=True)
        except (pika.exceptions.AMQPError, OSError):
            batch.returned.append(method.routing_key)
            return
        batch.remaining += 1
        self._pending[next(self._tags)] = batch
        self.unroutable_parked += 1
        log(
            "publish.unroutable",
            level=30,
            component="publisher",
            routing_key=method.routing_key,
            queue=key,
            count=self.unroutable_parked,
        )

    def _on_confirm(self, frame) -> None:
        method = frame.method
        ack = isinstance(method, Basic.Ack)
        if method.multiple:  # every outstanding tag up to this one (tags only grow)
            settled = []
            while self._pending and next(iter(self._pending)) <= method.delivery_tag:
                settled.append(self._pending.popitem(last=False)[1])
        else:
            one = self._pending.pop(method.delivery_tag, None)
            settled = [one] if one is not None else []
        for batch in settled:
            batch.nacked |= not ack
            batch.remaining -= 1
            if batch.remaining == 0:
                self._settle(batch)

    def _settle(self, batch: _Batch) -> None:
        self._batches.pop(batch.id, None)
        if batch.future.done():
            return
        if batch.returned:
            batch.future.set_exception(
                Unroutable(f"no queue bound for routing key(s) {', '.join(batch.returned)}")
            )
        elif batch.nacked:
            batch.future.set_exception(BrokerUnavailable("RabbitMQ refused the message (nack)"))
        else:
            batch.future.set_result(None)


class Publisher(ConfirmedChannel):
    """Its own thread owns a SelectConnection; ``publish()`` from any thread."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Connect and declare the topology; BrokerUnavailable when the first attempt fails."""
        self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)
        self._thread.start()
        self._first_connection(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        conn = self._connection
        if conn is not None:
            # The ioloop may be gone already; then the connection is closed.
            with contextlib.suppress(Exception):
                conn.ioloop.add_callback_threadsafe(self._close)
        if self._thread is not None:
            self._thread.join(timeout)

    def publish(self, messages: Sequence[OutboundMessage]) -> Future:
        """Future that resolves once every message is confirmed (never before)."""
        future: Future = Future()
        future.set_running_or_notify_cancel()
        conn = self._connection
        refusal = self._refusal() if messages else None
        if not messages:
            future.set_result(None)
        elif refusal is not None or conn is None:
            future.set_exception(refusal or BrokerUnavailable("not connected to RabbitMQ"))
        else:
            try:
                conn.ioloop.add_callback_threadsafe(lambda: self._publish_now(messages, future))
            except Exception:
                future.set_exception(BrokerUnavailable("connection to RabbitMQ is closing"))
        return future

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._declare_topology()
                self._connection = _Connection(parameters(self._url), **self._callbacks())
            except BrokerUnavailable as exc:
                self._attempt_failed(str(exc))
            else:
                self._connection.ioloop.start()
                self._connection = None
            delay = self._retry_delay()
            if delay is None:
                break
            self._stopping.wait(delay)

    def _ended(self, connection) -> None:
        connection.ioloop.stop()  # _run goes on: reconnects, or ends when stopping
