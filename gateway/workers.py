"""Pipeline worker processes: ``ingest()`` on every core while the event loop does the I/O.

The pipeline is pure and CPU-bound (parsing, validation, XAdES signing); in threads it holds
the GIL, so one process uses one core whatever its thread count. Here each worker process
builds its own Tools once, from the same Settings, with the same function as the parent
(bootstrap.load_tools: compiled schemas, loaded key, routing table), then receives
Submissions and returns Outcomes, both pickled. Publishing stays in the parent, after the
outcome: a sender is still answered only once RabbitMQ confirmed (gateway.service).

Routing is decided again in the parent with the table it holds now: routing.yaml is reloaded
there (gateway.routing.reload) while the workers keep the table they loaded at start.

A worker that dies (crash, OOM kill) breaks the pool: the submissions in flight get an
exception (the service answers "unavailable, retry"), and the next submission starts a new
pool. ``restart()`` also reloads what the workers loaded (routing.yaml, keys).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from gateway.config import Settings
from gateway.logs import log
from gateway.outcome import Accepted, Outcome
from gateway.pipeline import Tools, ingest
from gateway.routing.table import RoutingTable
from gateway.submission import Submission

START_TIMEOUT_S = 120.0
_tools: Tools | None = None  # in a worker process: built once by _load


def _load(settings: Settings) -> None:
    """Worker initializer: the parent decides when to stop, so ^C is left to it."""
    global _tools
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from gateway import bootstrap, logs

    logs.setup(settings.log_level, settings.log_format)
    _tools = bootstrap.load_tools(settings)


@dataclasses.dataclass(frozen=True)
class _Echoed:
    """An Accepted whose payload is the submission's own bytes, sent back without them: the
    parent holds them already (a CDA posted as is: 130 KB less to pickle and pipe back)."""

    outcome: Accepted


def _ingest(submission: Submission) -> Outcome | _Echoed:
    assert _tools is not None, "worker used before its initializer ran"
    outcome = ingest(submission, _tools)
    if isinstance(outcome, Accepted) and outcome.payload == submission.raw:
        return _Echoed(dataclasses.replace(outcome, payload=b""))
    return outcome


def _restored(result: Outcome | _Echoed, submission: Submission) -> Outcome:
    if isinstance(result, _Echoed):
        return dataclasses.replace(result.outcome, payload=submission.raw)
    return result


def _pid() -> int:
    return os.getpid()


def routed(accepted: Accepted, routing: RoutingTable) -> Accepted:
    """``accepted`` (and the documents that came with it) routed by ``routing``."""
    decision = routing.decide(accepted.envelope)
    return dataclasses.replace(
        accepted,
        destinations=decision.destinations,
        route_reasons=decision.reasons,
        related=tuple(routed(r, routing) for r in accepted.related),
    )


class PipelineWorkers:
    """A pool of ``processes`` pipeline workers; ``submit`` is safe from any thread."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs threads (publisher, consumers) that fork would
        # copy mid-flight; a fresh interpreter loads its own tools from Settings.
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(self.settings,),
        )

    def start(self, timeout: float = START_TIMEOUT_S) -> list[int]:
        """Start every worker now (not on the first message); their process ids."""
        futures = [self._pool.submit(_pid) for _ in range(self.processes)]
        done, pending = wait(futures, timeout)
        if pending:
            raise TimeoutError(f"pipeline workers not started after {timeout}s")
        pids = sorted({f.result() for f in done})
        log("workers.started", component="pipeline-workers", count=len(pids))
        return pids

    def _submit(self, submission: Submission) -> Future[Outcome | _Echoed]:
        pool = self._pool
        try:
            return pool.submit(_ingest, submission)
        except BrokenProcessPool:
            log("workers.broken", level=30, component="pipeline-workers")
            return self._replace(pool).submit(_ingest, submission)

    def submit(self, submission: Submission) -> Future[Outcome]:
        """ingest() in a worker, from any thread; the outcome as the workers' tables routed it."""
        done: Future[Outcome] = Future()

        def restore(future: Future[Outcome | _Echoed]) -> None:
            exc = future.exception()
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(_restored(future.result(), submission))

        self._submit(submission).add_done_callback(restore)
        return done

    async def ingest(self, submission: Submission, routing: RoutingTable) -> Outcome:
        """ingest() in a worker, routed by ``routing`` (the parent's live table)."""
        outcome = _restored(await asyncio.wrap_future(self._submit(submission)), submission)
        return routed(outcome, routing) if isinstance(outcome, Accepted) else outcome

    def restart(self) -> None:
        """A new pool (re-reading routing and keys); the old one finishes what it has."""
        self._replace(self._pool)

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is broken:
                self._pool = self._new_pool()
                broken.shutdown(wait=False, cancel_futures=False)
            return self._pool

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return sorted(p.pid for p in processes.values() if p.is_alive())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
