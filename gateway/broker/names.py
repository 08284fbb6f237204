"""Names of exchanges, queues and message headers, all under one prefix so that deployments
(and test runs) never collide on one broker."""

from __future__ import annotations

from dataclasses import dataclass

# Headers the gateway sets on messages it moves between queues (never patient data).
ATTEMPT = "x-passerelle-attempt"  # deliveries that failed so far
FAILURE = "x-passerelle-failure"  # why the last delivery failed (error class: message)
FAILED_AT = "x-passerelle-failed-at"  # ISO 8601 UTC of the last failure
DESTINATION = "x-passerelle-destination"  # the destination it was meant for (replay target)
FAILED_QUEUE = "x-passerelle-failed-queue"  # the queue whose consumer gave up on it
REPLAYED = "x-passerelle-replayed"  # how many times `gateway replay` re-published it
GATEWAY_HEADERS = (ATTEMPT, FAILURE, FAILED_AT, FAILED_QUEUE)  # cleared on replay


@dataclass(frozen=True)
class Names:
    prefix: str

    @property
    def exchange(self) -> str:
        """Topic exchange every document is published to; routing key = destination name."""
        return f"{self.prefix}.documents"

    @property
    def dead_letter_exchange(self) -> str:
        """Where failed and expired messages go; routing key = the target destination name."""
        return f"{self.prefix}.dead-letter"

    def queue(self, queue: str) -> str:
        return f"{self.prefix}.{queue}"

    def retry_queue(self, queue: str, delay_ms: int) -> str:
        """Holds a failed message for ``delay_ms``, then dead-letters it back to ``queue``."""
        return f"{self.prefix}.{queue}.retry-{delay_ms}ms"
