"""Fuzz target: the MLLP frame decoder, fed arbitrary bytes in arbitrary chunks.

Crashes are any exception, or a broken bound: a frame above the limit, a buffer above it.
"""

import sys

import atheris

with atheris.instrument_imports():
    from gateway.adapters.hl7v2.mllp import Frame, FrameDecoder

LIMIT = 4096


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    decoder = FrameDecoder(max_frame=LIMIT)
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512))
        for event in decoder.feed(chunk):
            if isinstance(event, Frame) and len(event.payload) > LIMIT:
                raise AssertionError("frame above the limit")
        if decoder.pending > LIMIT:
            raise AssertionError("buffer above the limit")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
