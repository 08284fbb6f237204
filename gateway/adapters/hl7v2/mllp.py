"""MLLP framing codec: <VT> message <FS><CR>, incremental and bounded. No sockets here.

Framing is not parsing: the decoder yields the bytes between the frame markers and knows
nothing of HL7. It survives what real links do: frames split across reads, several frames in
one read, noise between frames, frames that never end, and frames larger than the limit (those
are reported, with their first bytes so the caller can still address an ACK, and skipped).

A frame ends only on FS CR (0x1C 0x0D). An FS that is the last byte of a read waits for the
next read; an FS followed by anything else makes the frame bad: it is gathered up to its real
end and reported whole as ``Malformed`` (answered AR), never cut in two and half-processed.
"""

from __future__ import annotations

from dataclasses import dataclass

VT = 0x0B
FS = 0x1C
CR = 0x0D
START = b"\x0b"
END = b"\x1c\r"
HEAD_BYTES = 4096  # kept from an oversize frame: enough for its MSH


def frame(message: bytes) -> bytes:
    """Wrap one message for the wire."""
    return START + message + END


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame held an FS not followed by CR; ``head`` holds its first bytes (for the ACK's
    address), nothing of it is to be processed."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Oversize:
    """A frame exceeded the limit; ``head`` holds its first bytes, the rest was discarded."""

    head: bytes
    size: int


class FrameDecoder:
    """Feed it bytes as they arrive; it returns the complete frames (and oversize events).

    Bytes outside a frame are counted in ``noise`` and dropped. A VT inside a frame restarts
    the frame (the sender gave up on the previous one). The buffer never grows beyond
    ``max_frame`` + one read.
    """

    def __init__(self, max_frame: int = 20 * 1024 * 1024) -> None:
        self.max_frame = max_frame
        self.noise = 0
        self._buf = bytearray()
        self._in_frame = False
        self._discarding = False  # inside an oversize frame, waiting for its end
        self._discarded = 0
        self._head = b""
        self._fs_pending = False  # the last read ended on FS: its CR may be in the next one
        self._stray_fs = False  # the current frame held an FS not followed by CR
        self.started = 0  # frames begun so far (a new start block counts too)

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished frame."""
        return len(self._buf)

    @property
    def in_frame(self) -> bool:
        """A start block was read and its frame has not ended yet."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame | Oversize | Malformed]:
        out: list[Frame | Oversize | Malformed] = []
        view = memoryview(data)
        pos = 0
        n = len(data)
        while pos < n:
            if not self._in_frame:
                start = data.find(START, pos)
                if start < 0:
                    self.noise += n - pos
                    break
                self.noise += start - pos
                pos = start + 1
                self._begin()
                continue
            if self._fs_pending:
                self._fs_pending = False
                if data[pos] == CR:
                    pos += 1
                    out.append(self._finish())
                    continue
                self._bad_fs()
            end = data.find(b"\x1c", pos)
            restart = data.find(START, pos, end if end >= 0 else n)
            if restart >= 0:
                # A new frame starts before this one ended: drop the unfinished one.
                self._abandon()
                pos = restart + 1
                self._begin()
                continue
            if end < 0:
                self._append(view[pos:n])
                break
            self._append(view[pos:end])
            if end + 1 == n:  # FS last in this read: the next byte decides
                self._fs_pending = True
                break
            if data[end + 1] == CR:
                pos = end + 2
                out.append(self._finish())
                continue
            self._bad_fs()  # FS inside the frame: bad, but read on to its real end
            pos = end + 1
        return out

    def _begin(self) -> None:
        self._in_frame = True
        self._buf.clear()
        self._stray_fs = False
        self.started += 1

    def _bad_fs(self) -> None:
        self._stray_fs = True
        self._append(memoryview(b"\x1c"))

    def _append(self, chunk: memoryview) -> None:
        if self._discarding:
            self._discarded += len(chunk)
            return
        if len(self._buf) + len(chunk) > self.max_frame:
            self._head = bytes(self._buf[:HEAD_BYTES]) + bytes(
                chunk[: max(0, HEAD_BYTES - len(self._buf))]
            )
            self._discarding = True
            self._discarded = len(self._buf) + len(chunk)
            self._buf.clear()
            return
        self._buf += chunk

    def _finish(self) -> Frame | Oversize | Malformed:
        self._in_frame = False
        stray, self._stray_fs = self._stray_fs, False
        if self._discarding:
            event: Frame | Oversize = Oversize(head=self._head, size=self._discarded)
            self._discarding = False
            self._discarded = 0
            self._head = b""
            return event
        payload = bytes(self._buf)
        self._buf.clear()
        if stray:
            return Malformed(head=payload[:HEAD_BYTES], size=len(payload))
        return Frame(payload)

    def _abandon(self) -> None:
        self.noise += len(self._buf) + self._discarded
        self._buf.clear()
        self._stray_fs = False
        self._fs_pending = False
        self._discarding = False
        self._discarded = 0
        self._head = b""
