"""MLLP listener: asyncio TCP server; frames in, ACKs out, every frame answered.

Messages on one connection are handled in order (a sender's sequence is preserved); many
connections run concurrently. A frame that cannot be parsed, or is too large, still gets an
ACK (AR) addressed from whatever MSH could be read — the connection is never dropped for
content.

With a senders file, a connection is taken only from a client certificate that names a known
sender (mutual TLS), and only while that sender is under its connection maximum; anything
else is closed before a byte is read.

Slow peers cannot hold a connection: a frame must arrive whole within the request timeout
counted from its first byte (not per read, so a byte every few seconds does not keep it open),
and an ACK must be taken by the peer within the request timeout too; past either deadline the
connection is closed. Between frames the idle timeout applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from gateway.adapters.hl7v2 import ack
from gateway.adapters.hl7v2.mllp import Frame, FrameDecoder, Malformed, Oversize, frame
from gateway.adapters.hl7v2.parser import parse_header
from gateway.findings import Finding, error
from gateway.logs import log
from gateway.outcome import Receipt, ReceiptStatus, RejectionKind
from gateway.security.limits import ConnectionLimiter
from gateway.security.senders import Sender, SenderRegistry
from gateway.security.tls import common_name
from gateway.submission import Submission

Accept = Callable[[Submission], Awaitable[Receipt]]
READ_CHUNK = 64 * 1024


def new_control_id() -> str:
    return uuid.uuid4().hex[:20]


class MllpListener:
    def __init__(
        self,
        accept: Accept,
        max_frame: int,
        idle_timeout_s: float,
        *,
        ssl_context: ssl.SSLContext | None = None,
        senders: SenderRegistry | None = None,
        limiter: ConnectionLimiter | None = None,
        request_timeout_s: float | None = None,
    ) -> None:
        self._accept = accept
        self._max_frame = max_frame
        self._idle = idle_timeout_s
        self._ssl = ssl_context
        self._senders = senders
        self._limiter = limiter or ConnectionLimiter()
        self._request_timeout = request_timeout_s or idle_timeout_s
        self._server: asyncio.Server | None = None
        self.connections = 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=READ_CHUNK, ssl=self._ssl
        )
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _admit(self, writer: asyncio.StreamWriter) -> tuple[str, Sender | None] | None:
        """(sender label, sender) for a connection that may go on; None to refuse it."""
        peer = writer.get_extra_info("peername")
        label = f"mllp:{peer[0]}" if peer else "mllp:unknown"
        if self._senders is None:
            return label, None
        sender = self._senders.by_cert_cn(common_name(writer.get_extra_info("peercert")))
        if sender is None:
            log(
                "security.denied",
                level=30,
                transport="mllp",
                peer=label,
                reason="no client certificate naming a known sender",
            )
            return None
        if not self._limiter.admit(sender, "mllp"):
            return None
        return sender.id, sender

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        admitted = self._admit(writer)
        if admitted is None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            return
        sender, known = admitted
        decoder = FrameDecoder(self._max_frame)
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # the frame being read must be whole by then
        started = decoder.started
        self.connections += 1
        try:
            while True:
                # Between frames the idle timeout applies; inside one, what is left of its
                # request timeout, counted from its first byte.
                wait = self._idle if deadline is None else max(0.0, deadline - loop.time())
                try:
                    data = await asyncio.wait_for(reader.read(READ_CHUNK), wait)
                except TimeoutError:
                    log("mllp.timeout", peer=sender, size=decoder.pending)
                    break
                if not data:
                    break
                for event in decoder.feed(data):
                    response = await self._respond(event, sender)
                    if response is not None:
                        writer.write(frame(response))
                        await asyncio.wait_for(writer.drain(), self._request_timeout)
                if not decoder.in_frame:
                    deadline = None
                elif decoder.started != started or deadline is None:
                    # a frame began in this read (its time counts from now, after the answers
                    # to the frames before it were sent)
                    deadline = loop.time() + self._request_timeout
                started = decoder.started
        except TimeoutError:  # the peer does not take its ACKs
            log("mllp.timeout", peer=sender, size=decoder.pending, waiting="ack")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections -= 1
            if known is not None:
                self._limiter.release(known.id)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _respond(self, event: Frame | Oversize | Malformed, sender: str) -> bytes | None:
        now = datetime.now(UTC)
        if isinstance(event, Malformed):
            finding = error(
                "mllp.frame-end",
                "the frame holds an end-of-block byte (0x1C) not followed by CR: MLLP ends a "
                "frame only on 0x1C 0x0D, so this frame is refused whole",
                layer="mllp",
                hl7_code=100,
                fix="escape or remove the 0x1C byte inside the message, end the frame with 1C 0D",
            )
            return _refused_frame(event.head, finding, "bad MLLP frame", now)
        if isinstance(event, Oversize):
            finding = error(
                "mllp.frame-size",
                f"frame of {event.size} bytes exceeds the limit of {self._max_frame}",
                layer="mllp",
                hl7_code=207,
            )
            return _refused_frame(event.head, finding, "message too large", now)
        receipt = await self._accept(Submission(raw=event.payload, transport="mllp", sender=sender))
        return ack.build(
            parse_header(event.payload), receipt, now, new_control_id(), receipt.findings
        )


def _refused_frame(head: bytes, finding: Finding, reason: str, now: datetime) -> bytes:
    """The AR for a frame refused whole (nothing of it processed), addressed from its MSH."""
    receipt = Receipt(
        ReceiptStatus.REJECTED,
        new_control_id(),
        findings=(finding,),
        rejection=RejectionKind.UNREADABLE,
        reason=reason,
    )
    return ack.build(parse_header(head), receipt, now, new_control_id(), [finding])
