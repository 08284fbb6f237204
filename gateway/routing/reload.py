"""Reload routing.yaml without a restart: when the file changes, or when asked (SIGHUP).

A new file is checked whole before anything changes; a file with problems is refused with a
log line and the running rules stay. ``apply`` does the switch (declare the new topology, then
swap the table in); when it fails — broker unreachable — the old rules stay too, and the next
change or SIGHUP tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from gateway.errors import GatewayError
from gateway.logs import log
from gateway.routing import loader
from gateway.routing.table import RoutingTable


class RoutingReloader:
    def __init__(
        self, path: Path, apply: Callable[[RoutingTable], None], interval_s: float = 2.0
    ) -> None:
        self._path = path
        self._apply = apply
        self._interval = interval_s
        self._stamp = self._stat()
        self._wake = threading.Event()
        self._forced = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0  # applied reloads
        self.refusals = 0  # refused files (invalid, or the switch failed)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="routing-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def request(self) -> None:
        """Reload now, changed or not (SIGHUP). Safe from a signal handler: it only signals."""
        self._forced = True
        self._wake.set()

    def reload(self) -> bool:
        """Load and apply the file now; False (old rules kept) when it is refused."""
        self._stamp = self._stat()
        try:
            table = loader.load(self._path)
            self._apply(table)
        except GatewayError as exc:
            self.refusals += 1
            problems = getattr(exc, "findings", None) or [exc]
            log(
                "routing.reload-refused",
                level=40,
                count=len(problems),
                reason=str(exc).splitlines()[0][:300],
            )
            return False
        self.reloads += 1
        log("routing.reloaded", count=len(table.rules), destinations=sorted(table.destinations))
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            forced, self._forced = self._forced, False
            if forced or self._stat() != self._stamp:
                self.reload()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)
