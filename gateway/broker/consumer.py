"""Consumer: one thread, one blocking connection, manual acks decided in one place.

The handler does the work and says how it went by returning or raising:

    returns normally        → ack (the work is committed)
    raises Transient        → nack + requeue, then pause: the store is down, try again later
    raises Poison           → reject without requeue: the queue dead-letters it (parking)
    raises anything else    → same as Poison, with the error class logged

so no handler ever touches the channel. Reconnects by itself with backoff.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pika
import pika.exceptions

from gateway.broker.connection import parameters, redact
from gateway.errors import StoreUnavailable
from gateway.logs import log

RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)
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


class Consumer:
    def __init__(
        self, url: str, queue: str, handler: Handler, prefetch: int = 32, name: str = "consumer"
    ) -> None:
        self._url = url
        self._queue = queue
        self._handler = handler
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
            # The connection may be closing already; then there is nothing to stop.
            with contextlib.suppress(Exception):
                conn.add_callback_threadsafe(self._stop_consuming)
        if self._thread is not None:
            self._thread.join(timeout)

    def _stop_consuming(self) -> None:
        channel = self._channel
        if channel is not None and channel.is_open:
            channel.stop_consuming()  # start_consuming returns; _run closes the connection

    def _run(self) -> None:
        delays = iter(RECONNECT_DELAYS_S)
        while not self._stopping.is_set():
            try:
                self._connection = pika.BlockingConnection(parameters(self._url))
                channel = self._channel = self._connection.channel()
                channel.basic_qos(prefetch_count=self._prefetch)
                channel.basic_consume(self._queue, self._on_message)
                log("consumer.started", component=self._name, queue=self._queue)
                delays = iter(RECONNECT_DELAYS_S)
                self.consuming.set()
                channel.start_consuming()
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
            finally:
                self.consuming.clear()
                self._channel = None
                conn, self._connection = self._connection, None
                if conn is not None and conn.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                        conn.close()
            self._stopping.wait(next(delays, RECONNECT_DELAYS_S[-1]))

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        delivery = Delivery(
            body=body,
            message_id=properties.message_id,
            correlation_id=properties.correlation_id,
            headers=dict(properties.headers or {}),
            redelivered=method.redelivered,
            routing_key=method.routing_key,
        )
        try:
            self._handler(delivery)
        except Transient as exc:
            pause = TRANSIENT_PAUSE_S[min(self._transient_streak, len(TRANSIENT_PAUSE_S) - 1)]
            self._transient_streak += 1
            log(
                "consumer.transient",
                level=30,
                component=self._name,
                trace_id=delivery.correlation_id,
                reason=str(exc),
                delay_ms=int(pause * 1000),
            )
            channel.basic_nack(method.delivery_tag, requeue=True)
            self._connection.sleep(pause)  # keeps heartbeats going while we wait
            return
        except Exception as exc:
            self._transient_streak = 0
            log(
                "consumer.parked",
                level=40,
                component=self._name,
                trace_id=delivery.correlation_id,
                document_id=delivery.message_id,
                error=type(exc).__name__,
                reason=str(exc)[:200],
            )
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        self._transient_streak = 0
        channel.basic_ack(method.delivery_tag)
