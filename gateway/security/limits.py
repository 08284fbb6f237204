"""Connections per sender: counted at the transports, refused beyond the sender's maximum."""

from __future__ import annotations

import threading

from gateway.logs import log
from gateway.security.senders import Sender


class ConnectionLimiter:
    """Counts open connections (MLLP) or requests in flight (HTTP) per sender id."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, sender_id: str, maximum: int) -> bool:
        with self._lock:
            current = self._open.get(sender_id, 0)
            if current >= maximum:
                return False
            self._open[sender_id] = current + 1
            return True

    def admit(self, sender: Sender, transport: str) -> bool:
        """Take one of ``sender``'s slots; when none is left, log the refusal and say no."""
        if self.acquire(sender.id, sender.max_connections):
            return True
        log(
            "security.limit",
            level=30,
            transport=transport,
            sender=sender.id,
            count=sender.max_connections,
        )
        return False

    def release(self, sender_id: str) -> None:
        with self._lock:
            left = self._open.get(sender_id, 0) - 1
            if left > 0:
                self._open[sender_id] = left
            else:
                self._open.pop(sender_id, None)

    def open(self, sender_id: str) -> int:
        return self._open.get(sender_id, 0)
