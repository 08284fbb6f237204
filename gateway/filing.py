"""The record consumers in a child process of their own (GATEWAY_FILING_PROCESS).

In the gateway's process, filing shares one GIL with the event loop that answers senders: on
two cores the main process becomes the bottleneck of HTTP intake (docs/performance.md). Here
a spawned child runs what bootstrap.start_filing builds (its own broker connections, record
store connection and tracking writer) from the same Settings, and the parent keeps answering
for it: readiness and metrics go through a pipe.

Nothing is lost when the child dies: what it had not acknowledged is redelivered by RabbitMQ
and filing is idempotent. The parent starts a new child after ``restart_delay_s``; until then
``/ready`` says so. The child stops when asked, on SIGTERM (the batch in hand finished, its
tracking flushed), and when the parent is gone (the pipe closes).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from prometheus_client.metrics_core import Metric

from gateway.config import Settings
from gateway.logs import log
from gateway.routing.table import RoutingTable

START_TIMEOUT_S = 120.0
ANSWER_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 30.0


class FilingProcess:
    """Starts, watches, restarts and stops the filing child; every method is thread-safe."""

    def __init__(
        self,
        settings: Settings,
        start_timeout_s: float = START_TIMEOUT_S,
        restart_delay_s: float = 1.0,
        routing: Callable[[], RoutingTable] | None = None,
    ) -> None:
        self.settings = settings
        # The gateway's routing table as it stands (reloads included): each child starts
        # with it rather than reading routing.yaml, whose edit on disk may be one the gateway
        # refused; a child replaced then would fail to start, and filing stop, until fixed.
        self._routing = routing
        self._start_timeout = start_timeout_s
        self._restart_delay = restart_delay_s
        self._lock = threading.Lock()  # one request on the pipe at a time
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> int:
        """Start the child and wait until its consumers are started; its process id. Raises
        what made the child fail to start (bad settings, store or broker unreachable)."""
        pid = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="filing-watch", daemon=True)
        self._watcher.start()
        return pid

    def _spawn(self) -> int:
        # spawn, not fork: the parent runs threads (publisher, tracking) fork would copy.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        routing = self._routing() if self._routing is not None else None
        process = context.Process(
            target=serve, args=(self.settings, theirs, routing), name="passerelle-filing"
        )
        process.start()
        theirs.close()
        try:
            if not ours.poll(self._start_timeout):
                raise TimeoutError(f"filing process not started after {self._start_timeout}s")
            kind, value = ours.recv()
        except BaseException as exc:
            _end(process)
            ours.close()
            if isinstance(exc, (EOFError, OSError)):  # it died before saying how it went
                raise RuntimeError(f"filing process exited with code {process.exitcode}") from None
            raise
        if kind == "failed":
            process.join(STOP_TIMEOUT_S)
            ours.close()
            raise value
        with self._lock:
            stopping = self._stopping.is_set()  # stop() came while this child was starting
            if not stopping:
                self._process, self._conn = process, ours
        if stopping:
            _stop(process, ours)
            raise RuntimeError("filing process stopped while starting")
        log("filing.started", component="filing", count=int(value))
        return process.pid or 0

    def _watch(self) -> None:
        """Start a new child when the current one exits without being asked to."""
        while not self._stopping.is_set():
            process = self._process
            if process is not None and process.is_alive():
                process.join(0.5)
                continue
            if self._stopping.is_set():
                return
            code = process.exitcode if process is not None else None
            # 0: it was terminated and stopped cleanly (often with the whole process group,
            # the parent's own stop then following); anything else is a crash or a kill.
            log(
                "filing.exited",
                level=20 if code == 0 else 30,
                component="filing",
                reason=f"exit code {code}",
            )
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                self._process = self._conn = None
            delay = self._restart_delay
            while not self._stopping.wait(delay):
                try:
                    self._spawn()
                except Exception as exc:  # store or broker still down: try again, slower
                    log("filing.restart_failed", level=40, component="filing", error=str(exc))
                    delay = min(delay * 2, 30.0)
                    continue
                self.restarts += 1
                break

    def _ask(self, request: str) -> object | None:
        """The child's answer to ``request``, or None (no child, or no answer in time)."""
        with self._lock:
            conn, process = self._conn, self._process
            if conn is None or process is None or not process.is_alive():
                return None
            ident = next(self._ids)
            try:
                conn.send((ident, request))
                while conn.poll(ANSWER_TIMEOUT_S):
                    answered, answer = conn.recv()
                    if answered == ident:  # older answers (a request that timed out) are skipped
                        return answer
            except (EOFError, OSError):
                return None
            return None

    def ready(self) -> bool:
        """The child is running and each of its consumers is attached to its queue."""
        return self._ask("consuming") is True

    def metric_families(self) -> list[Metric]:
        """The child's metrics (consumer outcomes and lag, its tracking drops); [] if none."""
        families = self._ask("metrics")
        return families if isinstance(families, list) else []

    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def stop(self) -> None:
        """Ask the child to stop (it finishes the batch in hand) and wait for it."""
        with self._lock:
            self._stopping.set()
            process, conn = self._process, self._conn
        if process is not None and conn is not None:
            _stop(process, conn)
        if self._watcher is not None:
            self._watcher.join(STOP_TIMEOUT_S)


def _stop(process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
    with contextlib.suppress(OSError):
        conn.send((0, "stop"))
    process.join(STOP_TIMEOUT_S)
    _end(process)
    conn.close()


def _end(process: multiprocessing.process.BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
        process.join(5)
    if process.is_alive():
        process.kill()
        process.join()


# -- in the child ---------------------------------------------------------------------------


class _Terminated(Exception):
    """SIGTERM in the child: stop as when the parent asks (batch in hand, tracking flushed)."""


def _terminated(_signum, _frame) -> None:
    raise _Terminated


def serve(settings: Settings, conn: Connection, routing: RoutingTable | None = None) -> None:
    """The child's main: start filing, answer the parent until asked to stop, terminated or
    orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, _terminated)
    from gateway import bootstrap, logs

    logs.setup(settings.log_level, settings.log_format)
    try:
        filing = bootstrap.start_filing(settings, routing)
    except BaseException as exc:
        try:  # the exception itself when it pickles, else its name and message
            conn.send(("failed", exc))
        except Exception:
            conn.send(("failed", RuntimeError(f"{type(exc).__name__}: {exc}")))
        conn.close()
        return
    answers: dict[str, Callable[[], object]] = {
        "consuming": lambda: all(c.consuming.is_set() for c in filing.consumers),
        "metrics": lambda: list(filing.metrics.registry.collect()),
    }
    try:
        conn.send(("ready", len(filing.consumers)))
        while True:
            try:
                ident, request = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if request == "stop":
                break
            answer = answers.get(request)
            conn.send((ident, answer() if answer is not None else None))
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        bootstrap.stop_filing(filing)
        conn.close()
