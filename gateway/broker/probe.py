"""TopologyProbe: is the declared topology on the broker, and how deep are its queues?

Passive declares only (they create nothing and need no management plugin): an exchange or
queue that is missing closes the channel with 404, which is how absence is told. One short
blocking connection per look, with a socket timeout, and the answer is cached for ``ttl_s``
so that frequent ``/ready`` probes and ``/metrics`` scrapes cost the broker little.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pika.exceptions

from gateway.broker.connection import open_blocking
from gateway.broker.topology import Declaration
from gateway.errors import BrokerUnavailable


@dataclass(frozen=True, slots=True)
class TopologyState:
    reachable: bool
    missing: tuple[str, ...] = ()
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)  # (ready, consumers)

    @property
    def declared(self) -> bool:
        return self.reachable and not self.missing


class TopologyProbe:
    def __init__(self, url: str, declarations: Sequence[Declaration], ttl_s: float = 5.0) -> None:
        self._url = url
        self._decls = [d for d in declarations if d.kind in ("exchange", "queue")]
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._state: TopologyState | None = None
        self._at = 0.0

    def state(self) -> TopologyState:
        with self._lock:  # one look at a time; concurrent callers share its answer
            if self._state is None or time.monotonic() - self._at > self._ttl:
                self._state = self._look()
                self._at = time.monotonic()
            return self._state

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        return self.state().queues

    def _look(self) -> TopologyState:
        try:
            conn = open_blocking(self._url)
        except BrokerUnavailable:
            return TopologyState(reachable=False)
        missing: list[str] = []
        queues: dict[str, tuple[int, int]] = {}
        try:
            channel = conn.channel()
            for d in self._decls:
                try:
                    if d.kind == "exchange":
                        channel.exchange_declare(d.name, passive=True)
                    else:
                        ok = channel.queue_declare(d.name, passive=True).method
                        queues[d.name] = (ok.message_count, ok.consumer_count)
                except pika.exceptions.ChannelClosedByBroker:
                    missing.append(d.name)
                    channel = conn.channel()
        except (pika.exceptions.AMQPError, OSError):
            return TopologyState(reachable=False)
        finally:
            if conn.is_open:
                conn.close()
        return TopologyState(reachable=True, missing=tuple(missing), queues=queues)
