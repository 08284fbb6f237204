"""Replay one parked message, by trace id: the message browser's "replay" button.

``Replayer`` is the port the HTTP API calls; ``ParkingReplayer`` adapts the general tool
behind `gateway replay --from parking` (gateway.broker.replay) to one message: filter on the
trace id (AMQP correlation id), at most one, back to the destination it was parked from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gateway.broker import replay as broker_replay
from gateway.broker.names import Names
from gateway.errors import BrokerUnavailable
from gateway.routing.table import RoutingTable


class ReplayStatus(enum.StrEnum):
    REPLAYED = "replayed"
    NOT_FOUND = "not-found"  # not in the parking queue
    NO_ORIGIN = "no-origin"  # in parking, but where it was going cannot be told


@dataclass(frozen=True, slots=True)
class ReplayResult:
    status: ReplayStatus
    destination: str | None = None
    detail: str = ""
    at: datetime | None = None  # just before it was republished: it may be handled at once


class Replayer(Protocol):
    def replay(self, trace_id: str) -> ReplayResult: ...


class ParkingReplayer:
    def __init__(self, url: str, names: Names, table: RoutingTable) -> None:
        self._url = url
        self._names = names
        self._queue = names.queue(table.destinations[table.parking].queue)
        self._by_queue = {names.queue(d.queue): d.name for d in table.destinations.values()}

    def replay(self, trace_id: str) -> ReplayResult:
        at = datetime.now(UTC)
        result = broker_replay.replay(
            self._url,
            self._names,
            self._queue,
            filters=[broker_replay.Filter("trace_id", trace_id)],
            limit=1,
            queue_to_destination=self._by_queue.get,
        )
        if result.replayed:
            [(_document_id, destination)] = result.replayed
            return ReplayResult(ReplayStatus.REPLAYED, destination, at=at)
        if result.failed:
            [(_document_id, why)] = result.failed
            if "no destination" in why:
                return ReplayResult(ReplayStatus.NO_ORIGIN, detail=why)
            raise BrokerUnavailable(why)
        return ReplayResult(ReplayStatus.NOT_FOUND, detail="not in the parking queue")
