"""Processes under test: CPU time and peak memory of a process tree, read from /proc.

CPU is user+system time of every process in the tree (all threads), so pipeline worker
processes count; the broker's and the clients' CPU do not. The local RabbitMQ and PostgreSQL
servers' CPU over the same window is counted apart (``services_cpu_s``): what a message costs
them on the same two cores. Peak RSS is the sum of each
process's high-water mark (VmHWM): an upper bound of the tree's peak. Current RSS (VmRSS)
per process is what a soak samples; `slope` fits its trend.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on


def tree(root: int) -> list[int]:
    """``root`` and all its descendants alive now."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


SERVICES = ("beam.smp", "postgres")  # RabbitMQ's Erlang VM; PostgreSQL's processes


def services_cpu(names: tuple[str, ...] = SERVICES) -> dict[int, float]:
    """CPU seconds so far of every process named one of ``names`` (default: every RabbitMQ and
    PostgreSQL process), by pid."""
    found: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if comm in names and (fields := _stat(int(entry))) is not None:
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def _status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` line of /proc/PID/status (VmHWM, VmRSS); None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb(pids: list[int]) -> float:
    return round(sum(_status_kb(pid, "VmHWM") or 0 for pid in pids) / 1024, 1)


def rss_mb(pids: list[int]) -> dict[int, float]:
    """Resident memory now, per process still alive (unrounded: the caller sums them)."""
    found = {pid: _status_kb(pid, "VmRSS") for pid in pids}
    return {pid: kb / 1024 for pid, kb in found.items() if kb is not None}


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None with fewer than two distinct x.

    A soak's memory trend: one sample's noise (a burst of allocation, a GC) moves the fit
    much less than it moves a last-minus-first difference.
    """
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


class Tree:
    """CPU used by a set of process trees between two marks."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self._start = self._start_roots = 0.0
        self.cpu_s = 0.0
        self.roots_cpu_s = 0.0  # the gateway processes alone, without their worker children
        self.services_cpu_s = 0.0  # RabbitMQ and PostgreSQL over the same window
        self._start_services: dict[int, float] = {}

    def pids(self) -> list[int]:
        return [p for r in self.roots for p in tree(r)]

    def mark(self, event: str) -> None:
        now, roots = cpu_seconds(self.pids()), cpu_seconds(self.roots)
        services = services_cpu()
        if event == "start":
            self._start, self._start_roots = now, roots
            self._start_services = services
        else:
            self.cpu_s, self.roots_cpu_s = now - self._start, roots - self._start_roots
            # a backend started during the window counts from zero
            self.services_cpu_s = sum(
                cpu - self._start_services.get(pid, 0.0) for pid, cpu in services.items()
            )

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pids())

    def rss_mb(self) -> dict[int, float]:
        return rss_mb(self.pids())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s: {_tail(log)}")


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _tail(log: Path, lines: int = 8) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
