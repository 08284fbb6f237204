"""Names of exchanges and queues, all under one prefix so that deployments (and test runs)
never collide on one broker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    prefix: str

    @property
    def exchange(self) -> str:
        """Topic exchange every document is published to; routing key = destination name."""
        return f"{self.prefix}.documents"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dead-letter"

    def queue(self, queue: str) -> str:
        return f"{self.prefix}.{queue}"
