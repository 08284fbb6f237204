"""The bound on a request's line and headers (gateway.api.http_protocol), byte for byte.

The protocol is driven by hand through a recording transport, chunk by chunk as a socket
would deliver them; tests/reliability/test_hostile_inputs.py sends the same to a gateway."""

import asyncio

import uvicorn
from uvicorn.server import ServerState

from gateway.api.http_protocol import MAX_HEAD_BYTES, BoundedHttpProtocol


async def _app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def write(self, data) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _drive(chunks: list[bytes]) -> _Transport:
    async def run() -> _Transport:
        config = uvicorn.Config(_app, log_config=None, lifespan="off")
        config.load()
        protocol = BoundedHttpProtocol(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        protocol.connection_made(transport)
        for chunk in chunks:
            if transport.closed:
                break
            protocol.data_received(chunk)
            await asyncio.sleep(0)  # let a started request run
        for _ in range(5):
            await asyncio.sleep(0)
        return transport

    return asyncio.run(run())


def _head(padding: int) -> bytes:
    """A request line and headers with ``padding`` bytes of one header's value, unfinished."""
    return b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * padding


def test_a_head_of_exactly_the_bound_is_served():
    start = _head(0)
    head = _head(MAX_HEAD_BYTES - len(start))  # the bound, in 1 KB chunks, then its end
    assert len(head) == MAX_HEAD_BYTES
    chunks = [head[i : i + 1024] for i in range(0, len(head), 1024)] + [b"\r\n\r\n"]
    transport = _drive(chunks)
    assert transport.written.startswith(b"HTTP/1.1 200 OK"), transport.written[:40]


def test_one_byte_past_the_bound_is_refused_and_the_connection_closed():
    head = _head(MAX_HEAD_BYTES + 1 - len(_head(0)))
    chunks = [head[i : i + 1024] for i in range(0, len(head), 1024)] + [b"\r\n\r\n"]
    transport = _drive(chunks)
    assert transport.written.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"over 16384 bytes" in transport.written
    assert transport.closed


def test_a_body_arriving_with_the_end_of_the_head_is_not_counted():
    body = b"x" * 200_000
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    transport = _drive([request[:20], request[20:]])  # the rest of the head and all the body
    assert transport.written.startswith(b"HTTP/1.1 200 OK"), transport.written[:40]


def test_the_bound_is_per_request_on_a_kept_alive_connection():
    one = _head(12_000) + b"\r\n\r\n"  # 10 KB counted each time: 30 KB in all
    transport = _drive([one[:100], one[100:10_100], one[10_100:]] * 3)
    assert transport.written.count(b"HTTP/1.1 200 OK") == 3
    assert not transport.closed


def _timed(chunks: list[tuple[float, bytes]], keep_alive: float = 5, head_s: float = 30.0):
    """The transport after each ``(pause, chunk)``, on a protocol with these timeouts; an
    empty chunk only waits."""

    class Protocol(BoundedHttpProtocol):
        head_timeout_s = head_s

    async def run() -> _Transport:
        config = uvicorn.Config(_app, log_config=None, lifespan="off")
        config.timeout_keep_alive = keep_alive
        config.load()
        protocol = Protocol(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        protocol.connection_made(transport)
        for pause, chunk in chunks:
            await asyncio.sleep(pause)
            if transport.closed:
                break
            if chunk:
                protocol.data_received(chunk)
        for _ in range(5):
            await asyncio.sleep(0)
        return transport

    return asyncio.run(run())


def test_a_connection_that_never_sends_a_byte_is_closed_at_the_keep_alive_timeout():
    transport = _timed([(0.3, b"")], keep_alive=0.1)
    assert transport.closed and transport.written == b""


def test_a_head_trickled_past_its_deadline_gets_408_and_the_connection_closed():
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
    transport = _timed([(0, head)] + [(0.05, b"a")] * 10 + [(0, b"\r\n\r\n")], head_s=0.2)
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout"), transport.written
    assert b"not received in time" in transport.written and transport.closed


def test_a_head_in_pieces_within_its_deadline_is_served_and_disarms_it():
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    transport = _timed([(0, head[:10]), (0.05, head[10:]), (0.3, b"")], head_s=0.2)
    assert transport.written.startswith(b"HTTP/1.1 200 OK") and b"408" not in transport.written
    assert not transport.closed
