"""Pipeline worker processes: ``ingest()`` on every core while the event loop does the I/O.

The pipeline is pure and CPU-bound (parsing, validation, XAdES signing); in threads it holds
the GIL, so one process uses one core whatever its thread count. Here each worker process
builds its own Tools once, from the same Settings, with the same function as the parent
(bootstrap.load_tools: compiled schemas, loaded key, routing table), then receives
Submissions and returns Outcomes, both pickled. Publishing stays in the parent, after the
outcome: a sender is still answered only once RabbitMQ confirmed (gateway.service).

Each worker is joined to the parent by a socket pair carrying length-prefixed pickles, read
and written by the event loop itself (``add_reader``, ``sock_sendall``). A
ProcessPoolExecutor did the same through two threads of the parent (one pickling into a
shared queue, one waiting for results and then waking the loop): ~0.7 ms of CPU per raw
ORU^R01 at 100 msg/s in those threads; without them the gateway spends 5.7 % less CPU per
message (paired A/B, docs/performance.md, "Workers on sockets"). A submission goes to the
live worker with the fewest in flight, at most IN_FLIGHT each.

Routing is decided again in the parent with the table it holds now: routing.yaml is reloaded
there (gateway.routing.reload) while the workers keep the table they loaded at start.

A worker that dies (crash, OOM kill) fails the submissions it had in flight with WorkerDied
(the service answers "unavailable, retry") and is replaced by a new process; meanwhile the
others take the work, or it waits for the replacement. A worker that holds a job past the job
timeout (GATEWAY_REQUEST_TIMEOUT, counted from when the job could start: the worker's previous
answer) is taken for stuck, killed, and treated the same way; a submission also waits for a
free worker no longer than that. An answer the parent cannot load fails its own job only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import threading
import time

from gateway.config import Settings
from gateway.logs import log
from gateway.outcome import Accepted, Outcome
from gateway.pipeline import Tools, ingest
from gateway.routing.table import RoutingTable
from gateway.submission import Submission

START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 30.0  # without settings; else GATEWAY_REQUEST_TIMEOUT
IN_FLIGHT = 2  # jobs sent to one worker at a time: one running, the next already there
RESTART_PAUSE_MAX_S = 30.0  # between attempts to replace a dead worker whose start fails
# Each frame: its length, then a pickle. Pickles are only ever read from the other end of a
# socket pair this process made with its own child (never from the network): trusted.
_HEADER = struct.Struct("!I")
_ANSWER = struct.Struct("!IQ")  # a worker's answer: its length and its job, then the pickle
_READ_CHUNK = 256 * 1024
# Socket buffers big enough for most frames at once (a 130 KB CDA, an 800 KB ORU carrying
# documents): a send that the socket takes whole needs no waiting (``_send``). The kernel
# caps it (net.core.wmem_max); memory is used only while frames wait to be read.
_SOCKET_BUFFER = 4 * 1024 * 1024
_tools: Tools | None = None  # in a worker process: built once by _load


class WorkerDied(RuntimeError):
    """The worker process running a submission ended before answering (or was killed: stuck
    past the job timeout)."""


class WorkersBusy(TimeoutError):
    """No pipeline worker was free within the job timeout."""


class UnreadableAnswer(RuntimeError):
    """The worker's answer to a job could not be loaded back (a bug: one that does not
    unpickle); that job fails, the worker goes on."""


def _load(settings: Settings) -> None:
    """Worker start: the parent decides when to stop, so ^C is left to it."""
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


def routed(accepted: Accepted, routing: RoutingTable) -> Accepted:
    """``accepted`` (and the documents that came with it) routed by ``routing``."""
    decision = routing.decide(accepted.envelope)
    return dataclasses.replace(
        accepted,
        destinations=decision.destinations,
        route_reasons=decision.reasons,
        related=tuple(routed(r, routing) for r in accepted.related),
    )


# -- the worker process ---------------------------------------------------------------------


def _frame(value: object) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    """``n`` bytes, or None at end of stream (the parent closed its end or exited)."""
    buffer = bytearray(n)
    view, got = memoryview(buffer), 0
    while got < n:
        read = sock.recv_into(view[got:])
        if not read:
            return None
        got += read
    return bytes(buffer)


def _read_frame(sock: socket.socket) -> bytes | None:
    """One frame's pickle (blocking), or None at end of stream."""
    header = _read_exactly(sock, _HEADER.size)
    return header and _read_exactly(sock, _HEADER.unpack(header)[0])


def _answer_frame(job: int, ok: bool, value: object) -> bytes:
    body = pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    return _ANSWER.pack(len(body), job) + body


def _answer(job: int, submission: Submission) -> bytes:
    try:
        return _answer_frame(job, True, _ingest(submission))
    except Exception as exc:  # a bug in the pipeline: the parent logs it and answers "retry"
        return _answer_frame(job, False, _portable(exc))


def _portable(exc: Exception) -> Exception:
    """``exc`` if the parent can load it back, else a RuntimeError naming its class. Some
    exceptions pickle but do not unpickle (an __init__ whose arguments are not its ``args``:
    SignatureFault, InvalidXmlText); others do not pickle at all."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301 (ours)
    except Exception:
        return RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__} (not portable)")
    return exc


def _serve(sock: socket.socket, settings: Settings) -> None:
    """A worker's life: load the tools, say ready (with its pid), then answer each frame."""
    _load(settings)
    sock.sendall(_frame(os.getpid()))
    while True:
        body = _read_frame(sock)
        if body is None:
            return
        job, submission = pickle.loads(body)  # noqa: S301 (our parent)
        sock.sendall(_answer(job, submission))


# -- the parent's side ----------------------------------------------------------------------


class _Worker:
    """One worker process and the parent's end of its socket; ``pending``: job id → future."""

    def __init__(self, process, sock: socket.socket, pid: int) -> None:
        self.process = process
        self.sock = sock
        self.pid = pid
        self.pending: dict[int, asyncio.Future] = {}
        self.buffer = bytearray()
        self.sending = asyncio.Lock()  # one frame at a time on the socket
        self.backlog = 0  # frames waiting to be sent in turn (_send)
        self.overdue: asyncio.TimerHandle | None = None  # the running job's deadline
        self.alive = True


def _launch(settings: Settings) -> tuple[multiprocessing.process.BaseProcess, socket.socket]:
    # spawn, not fork: the parent runs threads (publisher, consumers) that fork would copy
    # mid-flight; a fresh interpreter loads its own tools from Settings.
    parent, child = socket.socketpair()
    for end in (parent, child):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(child, settings), name="pipeline-worker", daemon=True
    )
    try:
        process.start()
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return process, parent


def _started(process, sock: socket.socket, timeout: float) -> _Worker:
    """The launched worker once it has loaded its tools and said so."""
    try:
        sock.settimeout(timeout)
        body = _read_frame(sock)
        if body is None:
            raise WorkerDied(f"pipeline worker exited while starting (code {process.exitcode})")
        pid = pickle.loads(body)  # noqa: S301 (our child)
    except BaseException:
        sock.close()
        process.kill()
        raise
    sock.setblocking(False)
    return _Worker(process, sock, pid)


class PipelineWorkers:
    """``processes`` pipeline worker processes, used from an event loop (``ingest``).

    The workers' sockets are watched by one loop at a time, the first to call ``ingest``
    (the gateway has one); a call from another loop hops to it, and a loop that stopped
    running hands the workers to the next that calls."""

    def __init__(
        self, settings: Settings, processes: int, job_timeout_s: float | None = None
    ) -> None:
        self.settings = settings
        self.processes = processes
        if job_timeout_s is None:
            job_timeout_s = settings.request_timeout_s if settings else JOB_TIMEOUT_S
        self.job_timeout_s = job_timeout_s
        self._workers: list[_Worker] = []  # changed in the home loop (or before it exists)
        self._jobs = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._freed: asyncio.Event | None = None
        self._lock = threading.Lock()  # the worker list and the home loop, across threads
        self._closing = False

    def start(self, timeout: float = START_TIMEOUT_S) -> list[int]:
        """Start every worker now (not on the first message); their process ids."""
        launched, workers = [], []
        try:
            for _ in range(self.processes):  # they load their tools side by side
                launched.append(_launch(self.settings))
            for process, sock in launched:
                workers.append(_started(process, sock, timeout))
        except BaseException:
            for process, sock in launched:
                sock.close()
                process.kill()
            raise
        with self._lock:
            self._workers = workers
        log("workers.started", component="pipeline-workers", count=len(workers))
        return self.pids()

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            return sorted(w.pid for w in self._workers if w.alive and w.process.is_alive())

    async def ingest(self, submission: Submission, routing: RoutingTable) -> Outcome:
        """ingest() in a worker, routed by ``routing`` (the parent's live table)."""
        loop = asyncio.get_running_loop()
        home = self._home(loop)
        if home is loop:
            result = await self._run(submission)
        else:
            hop = asyncio.run_coroutine_threadsafe(self._run(submission), home)
            result = await asyncio.wrap_future(hop)
        outcome = _restored(result, submission)
        return routed(outcome, routing) if isinstance(outcome, Accepted) else outcome

    def _home(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        """The loop watching the workers: ``loop`` unless another one is running."""
        with self._lock:
            home = self._loop
            if home is loop or (home is not None and home.is_running()):
                return home
            for worker in self._workers:
                if not worker.alive:  # its replacement is starting
                    continue
                worker.sending = asyncio.Lock()  # a lock belongs to the loop that waits on it
                worker.backlog, worker.overdue = 0, None  # the old loop's, gone with it
                loop.add_reader(worker.sock, self._readable, worker, loop)
            self._freed = asyncio.Event()  # a worker took an answer back or came (in ``loop``)
            self._loop = loop  # an old loop that runs again ignores its readers (_readable)
            return loop

    async def _run(self, submission: Submission) -> Outcome | _Echoed:
        loop = asyncio.get_running_loop()
        worker = await self._least_busy(loop.time() + self.job_timeout_s)
        job = next(self._jobs)
        answer = loop.create_future()
        worker.pending[job] = answer
        if worker.overdue is None:  # it was idle: this job starts now
            worker.overdue = loop.call_later(self.job_timeout_s, self._overdue, worker)
        try:
            await self._send(worker, _frame((job, submission)))
        except OSError:
            self._died(worker)
        return await answer

    async def _send(self, worker: _Worker, frame: bytes) -> None:
        """``frame`` whole, after any other frame being sent, even if the caller is cancelled
        (half a frame would garble the stream). Usually the socket takes it at once. The
        backlog is counted at once: a frame's rest is queued before its task takes the lock,
        and no other frame may be written directly meanwhile."""
        if not worker.backlog:
            try:
                sent = worker.sock.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        worker.backlog += 1
        await asyncio.shield(asyncio.ensure_future(self._send_in_turn(worker, frame)))

    async def _send_in_turn(self, worker: _Worker, frame: bytes) -> None:
        try:
            async with worker.sending:
                await asyncio.get_running_loop().sock_sendall(worker.sock, frame)
        finally:
            worker.backlog -= 1

    async def _least_busy(self, deadline: float) -> _Worker:
        """The live worker with the fewest jobs, once it has fewer than IN_FLIGHT. Until then
        callers wait here, not in a worker's socket, so a job goes to whichever worker frees
        first: a long one (a conformance-pack run, an 800 KB message) holds up no others.
        At ``deadline`` (loop time) the caller stops waiting: WorkersBusy, or WorkerDied when
        none is running (a replacement still starting)."""
        loop = asyncio.get_running_loop()
        while True:
            live = [w for w in self._workers if w.alive]
            if live:
                worker = min(live, key=lambda w: len(w.pending))
                if len(worker.pending) < IN_FLIGHT:
                    return worker
            elif self._closing:
                raise WorkerDied("no pipeline worker is running")
            left = deadline - loop.time()
            if left <= 0:
                if live:
                    raise WorkersBusy(f"no pipeline worker free within {self.job_timeout_s}s")
                raise WorkerDied("no pipeline worker is running")
            self._freed.clear()
            # none live: a replacement is starting (seconds: it loads schemas), look again soon
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), left if live else min(left, 0.05))

    def _readable(self, worker: _Worker, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        try:
            data = worker.sock.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._died(worker)
            return
        buffer = worker.buffer
        buffer += data
        while len(buffer) >= _ANSWER.size:
            size, job = _ANSWER.unpack_from(buffer)
            end = _ANSWER.size + size
            if len(buffer) < end:
                break
            try:
                ok, value = pickle.loads(memoryview(buffer)[_ANSWER.size : end])  # noqa: S301
            except Exception as exc:  # this answer only: dropped, its job failed
                log("workers.unreadable-answer", level=40, component="pipeline-workers",
                    error=type(exc).__name__)  # fmt: skip
                ok, value = False, UnreadableAnswer(f"answer not loadable ({type(exc).__name__})")
            del buffer[:end]
            self._answered(worker, job, ok, value, loop)

    def _answered(
        self, worker: _Worker, job: int, ok: bool, value, loop: asyncio.AbstractEventLoop
    ) -> None:
        answer = worker.pending.pop(job, None)
        if worker.overdue is not None:  # its next job (if any) starts now
            worker.overdue.cancel()
            worker.overdue = None
        if worker.pending:
            worker.overdue = loop.call_later(self.job_timeout_s, self._overdue, worker)
        self._freed.set()
        if answer is None or answer.done():  # its caller went away (cancelled, past deadline)
            return
        if ok:
            answer.set_result(value)
        else:
            answer.set_exception(value)

    def _overdue(self, worker: _Worker) -> None:
        """In the home loop: ``worker`` held a job past the job timeout. Stuck (a pipeline
        looping on an input, a stopped process): killed, then handled as a dead worker (its
        jobs fail with WorkerDied, a replacement starts). A late answer can never come."""
        worker.overdue = None
        if not worker.alive:
            return
        log("workers.overdue", level=40, component="pipeline-workers",
            reason=f"a job unanswered after {self.job_timeout_s}s: worker killed")  # fmt: skip
        with contextlib.suppress(OSError, ValueError):  # gone already
            worker.process.kill()
        self._died(worker)

    def _died(self, worker: _Worker) -> None:
        """In the home loop: fail what ``worker`` had and start its replacement."""
        if not worker.alive:
            return
        worker.alive = False
        if worker.overdue is not None:
            worker.overdue.cancel()
            worker.overdue = None
        self._loop.remove_reader(worker.sock)
        worker.sock.close()
        for answer in worker.pending.values():
            if not answer.done():
                answer.set_exception(WorkerDied(f"pipeline worker {worker.pid} ended"))
        worker.pending.clear()
        self._freed.set()  # its waiters look again (and wait for the replacement)
        if self._closing:
            return
        log("workers.died", level=30, component="pipeline-workers", pid=worker.pid)
        threading.Thread(target=self._replace, args=(worker,), daemon=True).start()

    def _replace(self, dead: _Worker) -> None:
        """In a thread: a new process for ``dead`` (seconds), then adopted. A start that fails
        (memory, a key gone) is tried again, less and less often, until one works."""
        _stop(dead, timeout=1.0)
        worker = None
        for attempt in itertools.count():
            if self._closing:
                return
            try:
                worker = _started(*_launch(self.settings), START_TIMEOUT_S)
                break
            except Exception as exc:
                log("workers.restart_failed", level=40, component="pipeline-workers",
                    error=type(exc).__name__, attempt=attempt + 1)  # fmt: skip
                time.sleep(min(RESTART_PAUSE_MAX_S, 2**attempt))
        with self._lock:
            loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):  # else closed meanwhile: adopted below
                loop.call_soon_threadsafe(self._adopt, dead, worker, loop)
                return
        self._adopt(dead, worker, None)

    def _adopt(
        self, dead: _Worker, worker: _Worker, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """``worker`` in place of ``dead``, watched by the home loop (``loop``: called in it),
        or by whichever loop calls next when no loop is running."""
        with self._lock:
            self._workers.remove(dead)
            if self._closing:
                _stop(worker)
                return
            self._workers.append(worker)
            home = self._loop
            if home is loop and loop is not None:
                loop.add_reader(worker.sock, self._readable, worker, loop)
                self._freed.set()
            elif home is not None and home.is_running():  # the home loop moved meanwhile
                home.call_soon_threadsafe(home.add_reader, worker.sock, self._readable, worker,
                                          home)  # fmt: skip
            else:
                self._loop = None  # the next ingest() watches every worker from its loop
        log("workers.replaced", component="pipeline-workers", pid=worker.pid)

    def shutdown(self) -> None:
        """Stop the workers: each sees its socket's end and exits after its current job."""
        with self._lock:
            self._closing = True
            workers, loop = list(self._workers), self._loop
        watched = loop is not None and loop.is_running()
        for worker in workers:
            _stop(worker)
            if not watched:  # else the home loop sees the end of the stream and closes it
                worker.sock.close()


def _stop(worker: _Worker, timeout: float = 10.0) -> None:
    """Tell ``worker`` to exit (end of its input), wait for it, kill it if it lingers."""
    with contextlib.suppress(OSError):  # closed already
        worker.sock.shutdown(socket.SHUT_WR)
    worker.process.join(timeout)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(timeout)
