"""Bounds on every HTTP request body: its size, and the time to receive it.

uvicorn bounds neither, and FastAPI reads a JSON body whole before any dependency runs (the
bearer token included): without this, anyone could make the gateway hold hundreds of MB, or
hold a handler for as long as they trickle bytes. ``RequestLimits`` sits in front of every
route. The intake routes (POST /documents, /hl7v2) pass straight through: their own reader
streams the body against GATEWAY_MAX_DOCUMENT_BYTES and GATEWAY_REQUEST_TIMEOUT
(api/inbound.py), and nothing here reads it a second time. Every other route gets at most
``BODY_BYTES`` (forms and small JSON objects), within the request timeout from its first
read. A refusal (413, 408) closes the connection: the rest of the body is never read.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import Request

BODY_BYTES = 64 * 1024  # a body on any route but the intake ones
INTAKE = frozenset({"/documents", "/hl7v2"})  # POST: streamed by api/inbound.py
CLOSE = {"Connection": "close"}  # for a refusal sent before the whole body was read
_DISCONNECT = {"type": "http.disconnect"}


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it exceeds ``limit`` (the rest is not read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class RequestLimits:
    """ASGI middleware: 413 for a body over ``max_bytes``, 408 for one not received within
    ``timeout_s`` of the first read; either answered at once, connection closed."""

    def __init__(self, app, max_bytes: int = BODY_BYTES, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or (scope["method"] == "POST" and scope["path"] in INTAKE):
            return await self.app(scope, receive, send)
        declared = _declared_length(scope["headers"])
        if declared == 0:  # no body to bound (a GET, most of the time)
            return await self.app(scope, receive, send)
        if declared is not None and declared > self.max_bytes:
            return await _refuse(send, 413, f"body larger than {self.max_bytes} bytes")
        body = _BoundedBody(receive, send, self.max_bytes, self.timeout_s)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.refused:  # after a refusal: the app failed on the cut body, answered
                raise


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """Content-Length; None for a chunked body (length unknown); 0 without either."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
        if name == b"transfer-encoding":
            return None
    return 0


class _BoundedBody:
    """The app's ``receive`` and ``send`` around the server's: counts the body, keeps the
    deadline, and after a refusal hands the app a disconnect and drops what it sends."""

    __slots__ = ("_deadline", "_done", "_limit", "_receive", "_send", "_size", "_started",
                 "_timeout", "refused")  # fmt: skip

    def __init__(self, receive, send, limit: int, timeout_s: float) -> None:
        self._receive, self._send = receive, send
        self._limit, self._timeout = limit, timeout_s
        self._deadline: float | None = None
        self._size = 0
        self._done = False  # the whole body came: later reads wait for a disconnect only
        self._started = False  # the app began its answer: a refusal can no longer be sent
        self.refused = False

    async def receive(self):
        if self.refused:
            return _DISCONNECT
        if self._done:
            return await self._receive()
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            return await self._cut(408, "request body not received in time")
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            if self._size > self._limit:
                return await self._cut(413, f"body larger than {self._limit} bytes")
            self._done = not message.get("more_body", False)
        return message

    async def send(self, message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)

    async def _cut(self, status: int, reason: str):
        if not self._started:
            self.refused = True
            await _refuse(self._send, status, reason)
        return _DISCONNECT


async def _refuse(send, status: int, reason: str) -> None:
    body = json.dumps({"detail": reason}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
