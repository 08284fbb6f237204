"""Replay one parked message, by trace id: the message browser's "replay" button.

``Replayer`` is the port the HTTP API calls; ``ParkingReplayer`` adapts the general tool
behind `gateway replay --from parking` (gateway.broker.replay) to one message: filter on the
trace id (AMQP correlation id), every copy, each back to the destination it was parked from.

One submission may park several copies under one trace id: a document routed to two
destinations that both refused it, an ORU^R01 carrying two CDAs. Replaying only one would
show the message as replayed while another copy stays parked, out of sight. All of them go
(at most ``MAX_COPIES``: a trace id has one copy per document and destination); copies that
cannot go are reported beside the ones that went.
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

MAX_COPIES = 100  # far above documents x destinations of one submission


class ReplayStatus(enum.StrEnum):
    REPLAYED = "replayed"
    NOT_FOUND = "not-found"  # not in the parking queue
    NO_ORIGIN = "no-origin"  # in parking, but where it was going cannot be told


@dataclass(frozen=True, slots=True)
class ReplayResult:
    status: ReplayStatus
    destinations: tuple[str, ...] = ()  # one per copy sent back, in the order they went
    detail: str = ""
    at: datetime | None = None  # just before the first was republished: it may be handled at once
    left: tuple[str, ...] = ()  # why each copy that could not go is still parked

    @property
    def copies(self) -> int:
        return len(self.destinations)


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
            limit=MAX_COPIES,
            queue_to_destination=self._by_queue.get,
        )
        left = tuple(why for _document_id, why in result.failed)
        if result.replayed:
            destinations = tuple(destination for _document_id, destination in result.replayed)
            return ReplayResult(ReplayStatus.REPLAYED, destinations, at=at, left=left)
        if left:
            if all("no destination" in why for why in left):
                return ReplayResult(ReplayStatus.NO_ORIGIN, detail="; ".join(left), left=left)
            raise BrokerUnavailable("; ".join(left))
        return ReplayResult(ReplayStatus.NOT_FOUND, detail="not in the parking queue")
