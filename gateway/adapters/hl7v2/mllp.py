"""MLLP framing codec: <VT> message <FS><CR>, incremental and bounded. No sockets here.

Framing is not parsing: the decoder yields the bytes between the frame markers and knows
nothing of HL7. It survives what real links do: frames split across reads, several frames in
one read, noise between frames, frames that never end, and frames larger than the limit (those
are reported, with their first bytes so the caller can still address an ACK, and skipped).
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

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | Oversize]:
        out: list[Frame | Oversize] = []
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
                self._in_frame = True
                self._buf.clear()
                continue
            end = data.find(b"\x1c", pos)
            restart = data.find(START, pos, end if end >= 0 else n)
            if restart >= 0:
                # A new frame starts before this one ended: drop the unfinished one.
                self._abandon()
                pos = restart + 1
                self._in_frame = True
                continue
            if end < 0:
                self._append(view[pos:n])
                break
            self._append(view[pos:end])
            # FS ends the frame; its CR is skipped when present (a lone FS is tolerated).
            pos = end + 2 if end + 1 < n and data[end + 1] == CR else end + 1
            out.append(self._finish())
        return out

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

    def _finish(self) -> Frame | Oversize:
        self._in_frame = False
        if self._discarding:
            event: Frame | Oversize = Oversize(head=self._head, size=self._discarded)
            self._discarding = False
            self._discarded = 0
            self._head = b""
            return event
        payload = bytes(self._buf)
        self._buf.clear()
        return Frame(payload)

    def _abandon(self) -> None:
        self.noise += len(self._buf) + self._discarded
        self._buf.clear()
        self._discarding = False
        self._discarded = 0
        self._head = b""
