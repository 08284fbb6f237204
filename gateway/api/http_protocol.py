"""The gateway's HTTP protocol: uvicorn's httptools one, with the request head bounded.

httptools parses in C; through h11, which parses in Python, a 130 KB CR-BIO cost the gateway
~4 % more CPU (docs/performance.md, "The publisher in the event loop"). Unlike h11, it bounds
neither the request line nor the headers: a sender could grow a connection's memory without
end before any handler runs. Here a request whose line and headers pass MAX_HEAD_BYTES is
answered 400 and its connection closed, as h11 did at the same size.

Time is bounded too. uvicorn arms its keep-alive timeout only after a response, so a
connection that never sent a byte stayed open for good; here it is armed when the connection
opens. And a head must arrive whole within ``head_timeout_s`` (GATEWAY_REQUEST_TIMEOUT) of its
first byte, else 408 and the connection closed: a head trickled a byte at a time held a
connection for ever. The body's own bounds are api/limits.py's and api/inbound.py's.
"""

from __future__ import annotations

from asyncio import TimerHandle

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.logs import log

MAX_HEAD_BYTES = 16 * 1024  # h11's bound on a request's line and headers (a detached
# XAdES signature travels in a header: a few KB)


class BoundedHttpProtocol(HttpToolsProtocol):
    """Counts what arrives while a request's head is incomplete. Only chunks that begin and
    end inside a head are counted (one that completes it may carry the body too; one that
    starts a request on a kept-alive connection may end the previous body): the parser holds
    at most the bound and two chunks of a head (asyncio reads at most 256 KiB at a time).

    The head's deadline is armed only when a read ends inside a head (a head that comes in
    one read, the usual case, costs no timer)."""

    head_timeout_s: float = 30.0  # PeerNames.protocol sets GATEWAY_REQUEST_TIMEOUT

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._in_head, self._head_bytes = True, 0
        self._head_deadline: TimerHandle | None = None
        super().connection_made(transport)
        # idle from the start: the first byte cancels it (data_received), as after a response
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        in_head = self._in_head
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_deadline is None:  # a head begun, not finished: it has this long
            self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_overdue)
        if not in_head:
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            log("http.head-too-large", level=30, limit=MAX_HEAD_BYTES)
            self.send_400_response(f"request line and headers over {MAX_HEAD_BYTES} bytes")

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        log("http.head-timeout", level=30, peer=_peer(self.client),
            reason=f"request head not received within {self.head_timeout_s}s")  # fmt: skip
        reason = b"request line and headers not received in time"
        self.transport.write(
            STATUS_LINE[408] + b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(reason), reason)
        )
        self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"http:{client[0]}" if client else "http:unknown"
