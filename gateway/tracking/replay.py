"""Replay one parked message, by trace id, back to the destination it was dead-lettered from.

A stop-gap for the message browser's "replay" button until `gateway replay --from parking`
(routing work) provides the general tool; ``Replayer`` is the port the HTTP API calls, so
that tool can take its place without touching the API.

How: on one channel, take messages from the parking queue without acknowledging them, at most
``max_scan``, until the one whose correlation id is the trace id; republish it (mandatory,
confirmed) to the documents exchange with the routing key RabbitMQ recorded in its first
``x-death`` entry, then acknowledge it. Closing the channel returns every other message
taken to the queue untouched. A message that was routed to parking directly (no ``x-death``)
has nowhere to go back to and is left where it is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pika
import pika.exceptions

from gateway.broker.connection import open_blocking
from gateway.broker.names import Names
from gateway.errors import BrokerUnavailable

MAX_SCAN = 10_000
_DROPPED_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue",
                    "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
                    "x-last-death-reason")  # fmt: skip


class ReplayStatus(enum.StrEnum):
    REPLAYED = "replayed"
    NOT_FOUND = "not-found"  # not in the parking queue (within the scan bound)
    NO_ORIGIN = "no-origin"  # parked by routing, not dead-lettered: nothing to go back to


@dataclass(frozen=True, slots=True)
class ReplayResult:
    status: ReplayStatus
    destination: str | None = None
    detail: str = ""
    at: datetime | None = None  # when it was republished: it may be handled again at once


class Replayer(Protocol):
    def replay(self, trace_id: str) -> ReplayResult: ...


class ParkingReplayer:
    def __init__(self, url: str, names: Names, parking_queue: str, max_scan: int = MAX_SCAN):
        self._url = url
        self._names = names
        self._queue = names.queue(parking_queue)
        self._max_scan = max_scan

    def replay(self, trace_id: str) -> ReplayResult:
        conn = open_blocking(self._url)
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            return self._replay(channel, trace_id)
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BrokerUnavailable(f"replay failed: {type(exc).__name__}") from None
        finally:
            if conn.is_open:
                conn.close()  # returns every other message taken to the queue

    def _replay(self, channel, trace_id: str) -> ReplayResult:
        for _ in range(self._max_scan):
            method, props, body = channel.basic_get(self._queue, auto_ack=False)
            if method is None:
                break
            if props.correlation_id != trace_id:
                continue
            headers = dict(props.headers or {})
            deaths = headers.get("x-death") or []
            keys = deaths[-1].get("routing-keys") if deaths else None  # the first death is last
            if not keys:
                return ReplayResult(
                    ReplayStatus.NO_ORIGIN, detail="routed to parking, not dead-lettered"
                )
            destination = keys[0].decode() if isinstance(keys[0], bytes) else str(keys[0])
            for name in _DROPPED_HEADERS:
                headers.pop(name, None)
            headers["x-replayed"] = int(headers.get("x-replayed", 0)) + 1
            props.headers = headers
            at = datetime.now(UTC)
            try:
                channel.basic_publish(
                    self._names.exchange, destination, body, props, mandatory=True
                )
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                # Not acknowledged: it stays in parking when the channel closes.
                raise BrokerUnavailable(
                    f"RabbitMQ did not take the replay to {destination!r} ({type(exc).__name__})"
                ) from None
            channel.basic_ack(method.delivery_tag)
            return ReplayResult(ReplayStatus.REPLAYED, destination, at=at)
        return ReplayResult(ReplayStatus.NOT_FOUND, detail="not in the parking queue")
