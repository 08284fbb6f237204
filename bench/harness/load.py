"""Load drivers: N concurrent connections, each sending one message and awaiting its answer.

The clients are deliberately minimal (asyncio streams, no HTTP library): they share the two
cores with the gateway, so every microsecond they spend is taken from what is measured.
A connection sends its next message only once the previous one was answered (ACK or HTTP
response), as a sender that needs the acknowledgement does.

`drive` is closed-loop (each connection sends again as soon as it is answered: throughput);
`pace` is open-loop (sends scheduled at a fixed rate, whatever the answers: latency at a
given load, queueing included).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\x0d"
PRIME_TIMEOUT_S = 300.0
FINISH_TIMEOUT_S = 60.0  # answers still awaited after the window; then they are dropped


@dataclass
class Run:
    """What the clients saw in the measured window."""

    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    ok: int = 0
    refused: int = 0  # answered, but not accepted (AE/AR, 4xx/5xx)
    last_refusal: str = ""

    @property
    def count(self) -> int:
        return self.ok + self.refused

    def figures(self) -> dict:
        lat = sorted(self.latencies_s)
        return {
            "msg/s": round(self.count / self.seconds, 1) if self.seconds else 0.0,
            "p50 ms": _ms(percentile(lat, 50)),
            "p95 ms": _ms(percentile(lat, 95)),
            "p99 ms": _ms(percentile(lat, 99)),
            "sent": self.count,
            "refused": self.refused,
        }

    def record(self, latency_s: float, accepted: bool, detail: str) -> None:
        self.latencies_s.append(latency_s)
        if accepted:
            self.ok += 1
        else:
            self.refused += 1
            self.last_refusal = detail


@dataclass
class Paced(Run):
    """An open-loop window: latencies run from each send's scheduled time, not its actual one."""

    target: float = 0.0  # msg/s scheduled
    scheduled: int = 0  # sends scheduled in the window
    answered: int = 0  # answers received in the window, whenever their send was scheduled
    late: int = 0  # scheduled while every connection was busy: they queued in the client

    def figures(self) -> dict:
        row = super().figures()
        # Achieved: answers per second of the window. Steady, it equals the target (the
        # warm-up's last answers stand for the window's own); behind, it falls below.
        row["msg/s"] = round(self.answered / self.seconds, 1) if self.seconds else 0.0
        row["target msg/s"] = round(self.target, 1)
        row["late"] = self.late
        if self.scheduled > self.count:  # no answer within FINISH_TIMEOUT_S
            row["unanswered"] = self.scheduled - self.count
        return row


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, round(p / 100 * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ms(seconds: float | None) -> float | str:
    return "" if seconds is None else round(seconds * 1000, 1)


# -- MLLP ------------------------------------------------------------------------------------


class MllpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> MllpConnection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def exchange(self, message: bytes) -> tuple[bool, str]:
        """Send one framed message; (accepted, ACK code) from the ACK's MSA-1."""
        self._writer.write(START_BLOCK + message + END_BLOCK)
        await self._writer.drain()
        answer = await self._reader.readuntil(END_BLOCK)
        code = ack_code(answer)
        return code in ("AA", "CA"), code

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


def ack_code(frame: bytes) -> str:
    at = frame.find(b"\rMSA")
    at = at + 1 if at >= 0 else frame.find(b"MSA")
    if at < 0:
        return "no MSA"
    sep = frame[at + 3 : at + 4]
    return frame[at + 4 :].split(sep, 1)[0].split(b"\r", 1)[0].decode("ascii", "replace")


# -- HTTP/1.1, keep-alive ----------------------------------------------------------------------


class HttpConnection:
    def __init__(self, reader, writer, host: str, port: int) -> None:
        self._reader, self._writer = reader, writer
        self._host = f"{host}:{port}".encode()

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, host, port)

    async def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        self._writer.write(head + b"Host: " + self._host + b"\r\n\r\n" + body)
        await self._writer.drain()
        header = await self._reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await self._reader.readexactly(length)
        return status, answer

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


def http_sender(path: str, content_type: str, accepted: int = 202):
    async def open_(host: str, port: int):
        conn = await HttpConnection.open(host, port)

        async def send(message: bytes) -> tuple[bool, str]:
            status, answer = await conn.post(path, message, content_type)
            return status == accepted, f"HTTP {status} {answer[:200]!r}"

        return send, conn.close

    return open_


def mllp_sender():
    async def open_(host: str, port: int):
        conn = await MllpConnection.open(host, port)
        return conn.exchange, conn.close

    return open_


# -- the drivers -------------------------------------------------------------------------------

Opener = Callable[[str, int], Awaitable[tuple[Callable[[bytes], Awaitable], Callable]]]
Send = Callable[[bytes], Awaitable[tuple[bool, str]]]


@contextlib.asynccontextmanager
async def _primed(
    opener: Opener, targets: list[tuple[str, int]], messages: Iterator[bytes], connections: int
) -> AsyncIterator[list[Send]]:
    """``connections`` open connections (spread over ``targets``), each having had one message
    answered however long it took (bounded by PRIME_TIMEOUT_S): what a gateway compiles on
    first use, in every worker, is not what is measured."""
    opened = []
    try:
        for i in range(connections):
            opened.append(await opener(*targets[i % len(targets)]))
        async with asyncio.timeout(PRIME_TIMEOUT_S), asyncio.TaskGroup() as primes:
            for send, _ in opened:
                primes.create_task(send(next(messages)))
        yield [send for send, _ in opened]
    finally:
        for _, close in opened:
            await close()


async def _finish(tasks: list[asyncio.Task], timeout_s: float = FINISH_TIMEOUT_S) -> None:
    """Wait up to ``timeout_s`` for ``tasks``; re-raise what failed, cancel the rest."""
    try:
        _, late = await asyncio.wait(tasks, timeout=timeout_s)
        for t in tasks:
            if t not in late and t.exception() is not None:
                raise t.exception()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def drive(
    opener: Opener,
    targets: list[tuple[str, int]],
    messages: Iterator[bytes],
    connections: int,
    seconds: float,
    warmup_s: float = 1.0,
    on_window: Callable[[str], None] | None = None,
) -> Run:
    """Closed loop: ``connections`` primed senders, each sending again once answered;
    ``warmup_s``, then the measured ``seconds``.

    ``on_window("start"|"end")`` marks the measured window (the caller samples CPU there).
    """
    run = Run()
    measuring = False
    stop_at = float("inf")

    async def sender(send: Send) -> None:
        while time.perf_counter() < stop_at:
            message = next(messages)
            t0 = time.perf_counter()
            accepted, detail = await send(message)
            if measuring:
                run.record(time.perf_counter() - t0, accepted, detail)

    async with _primed(opener, targets, messages, connections) as sends:
        tasks = [asyncio.create_task(sender(send)) for send in sends]
        await asyncio.sleep(warmup_s)
        if on_window:
            on_window("start")
        measuring, started = True, time.perf_counter()
        await asyncio.sleep(seconds)
        run.seconds = time.perf_counter() - started
        measuring = False
        if on_window:
            on_window("end")
        stop_at = 0.0
        await _finish(tasks)
    return run


def schedule(start: float, rate: float) -> Iterator[float]:
    """Send times at ``rate`` per second from ``start``; computed, not accumulated, so
    rounding does not drift over a long soak."""
    return (start + i / rate for i in itertools.count())


async def pace(
    opener: Opener,
    targets: list[tuple[str, int]],
    messages: Iterator[bytes],
    connections: int,
    seconds: float,
    *,
    rate: float,
    warmup_s: float = 1.0,
    on_window: Callable[[str], None] | None = None,
) -> Paced:
    """Open loop: sends scheduled at ``rate`` per second, taken in order by whichever of the
    ``connections`` primed connections is free; ``warmup_s``, then the measured ``seconds``.

    Latency runs from the scheduled time, so a send that waited for a free connection counts
    its wait (no coordinated omission); such a send is also counted ``late``. The messages
    scheduled in the window are all awaited (bounded by FINISH_TIMEOUT_S).
    """
    run = Paced(target=rate)
    due_queue: asyncio.Queue[float] = asyncio.Queue()
    idle = 0
    begin = end = float("inf")

    async def connection(send: Send) -> None:
        nonlocal idle
        while True:
            idle += 1
            due = await due_queue.get()
            idle -= 1
            accepted, detail = await send(next(messages))
            now = time.perf_counter()
            if begin <= due < end:
                run.record(now - due, accepted, detail)
            if begin <= now < end:
                run.answered += 1
            due_queue.task_done()

    async with _primed(opener, targets, messages, connections) as sends:
        tasks = [asyncio.create_task(connection(send)) for send in sends]
        start = time.perf_counter()
        begin, end = start + warmup_s, start + warmup_s + seconds
        for due in schedule(start, rate):
            if due >= begin and run.seconds == 0.0:
                await _at(begin)
                if on_window:
                    on_window("start")
                run.seconds = seconds
            if due >= end:
                break
            await _at(due)
            if due >= begin:
                run.scheduled += 1
                # Free connections: idle ones not yet woken for sends already queued.
                if idle - due_queue.qsize() <= 0:
                    run.late += 1
            due_queue.put_nowait(due)
        await _at(end)
        if on_window:
            on_window("end")
        await _drain(due_queue, tasks)
    return run


async def _at(when: float) -> None:
    if (wait := when - time.perf_counter()) > 0:
        await asyncio.sleep(wait)


async def _drain(due_queue: asyncio.Queue, tasks: list[asyncio.Task]) -> None:
    """Await the answers to what was scheduled (bounded by FINISH_TIMEOUT_S), then stop the
    connections; one that ended early failed, and its error is raised."""
    joined = asyncio.create_task(due_queue.join())
    await asyncio.wait([joined, *tasks], timeout=FINISH_TIMEOUT_S, return_when="FIRST_COMPLETED")
    joined.cancel()
    await _finish(tasks, timeout_s=0)
