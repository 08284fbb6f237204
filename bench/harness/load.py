"""Load drivers: N concurrent connections, each sending one message and awaiting its answer.

The clients are deliberately minimal (asyncio streams, no HTTP library): they share the two
cores with the gateway, so every microsecond they spend is taken from what is measured.
A connection sends its next message only once the previous one was answered (ACK or HTTP
response), as a sender that needs the acknowledgement does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
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


# -- the driver --------------------------------------------------------------------------------

Opener = Callable[[str, int], Awaitable[tuple[Callable[[bytes], Awaitable], Callable]]]


async def drive(
    opener: Opener,
    targets: list[tuple[str, int]],
    messages: Iterator[bytes],
    connections: int,
    seconds: float,
    warmup_s: float = 1.0,
    on_window: Callable[[str], None] | None = None,
) -> Run:
    """Run ``connections`` senders (spread over ``targets``): each first sends one message and
    waits for its answer however long it takes (bounded by PRIME_TIMEOUT_S: what a gateway
    compiles on first use, in every worker, is not what is measured), then ``warmup_s``,
    then the measured ``seconds``.

    ``on_window("start"|"end")`` marks the measured window (the caller samples CPU there).
    """
    run = Run()
    measuring = False
    stop_at = float("inf")
    primed = asyncio.Semaphore(0)

    async def sender(i: int) -> None:
        host, port = targets[i % len(targets)]
        send, close = await opener(host, port)
        try:
            try:
                await send(next(messages))
            finally:
                primed.release()  # a sender that failed here must not hold the others
            while time.perf_counter() < stop_at:
                message = next(messages)
                t0 = time.perf_counter()
                accepted, detail = await send(message)
                if not measuring:
                    continue
                run.latencies_s.append(time.perf_counter() - t0)
                if accepted:
                    run.ok += 1
                else:
                    run.refused += 1
                    run.last_refusal = detail
        finally:
            await close()

    tasks = [asyncio.create_task(sender(i)) for i in range(connections)]
    try:
        async with asyncio.timeout(PRIME_TIMEOUT_S):
            for _ in tasks:
                await primed.acquire()
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
        _, late = await asyncio.wait(tasks, timeout=FINISH_TIMEOUT_S)
        for t in tasks:
            if t not in late and t.exception() is not None:
                raise t.exception()
    finally:
        for t in tasks:
            t.cancel()
    return run
