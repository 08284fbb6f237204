"""The gateway's HTTP protocol: uvicorn's httptools one, with the request head bounded.

httptools parses in C; through h11, which parses in Python, a 130 KB CR-BIO cost the gateway
~4 % more CPU (docs/performance.md, "The publisher in the event loop"). Unlike h11, it bounds
neither the request line nor the headers: a sender could grow a connection's memory without
end before any handler runs. Here a request whose line and headers pass MAX_HEAD_BYTES is
answered 400 and its connection closed, as h11 did at the same size.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.logs import log

MAX_HEAD_BYTES = 16 * 1024  # h11's bound on a request's line and headers (a detached
# XAdES signature travels in a header: a few KB)


class BoundedHttpProtocol(HttpToolsProtocol):
    """Counts what arrives while a request's head is incomplete. Only chunks that begin and
    end inside a head are counted (one that completes it may carry the body too; one that
    starts a request on a kept-alive connection may end the previous body): the parser holds
    at most the bound and two chunks of a head (asyncio reads at most 256 KiB at a time)."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._in_head, self._head_bytes = True, 0
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        in_head = self._in_head
        super().data_received(data)
        if not (in_head and self._in_head) or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            log("http.head-too-large", level=30, limit=MAX_HEAD_BYTES)
            self.send_400_response(f"request line and headers over {MAX_HEAD_BYTES} bytes")
