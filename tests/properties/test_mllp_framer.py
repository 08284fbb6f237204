"""MLLP framer properties: any split of the wire gives the same frames; memory stays bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.hl7v2.mllp import END, START, Frame, FrameDecoder, Oversize, frame
from tests.properties.strategies import noise

payloads = st.lists(
    st.binary(max_size=200).map(lambda b: b.replace(START, b"").replace(b"\x1c", b"")),
    max_size=10,
)


def feed_in_chunks(decoder: FrameDecoder, wire: bytes, cuts: list[int]) -> list:
    out, last = [], 0
    for cut in [*sorted({min(c, len(wire)) for c in cuts}), len(wire)]:
        out += decoder.feed(wire[last:cut])
        last = cut
    return out


@settings(max_examples=300, deadline=1000)
@given(payloads, st.lists(st.integers(0, 3000), max_size=20), st.binary(max_size=20))
def test_frames_survive_any_split_and_noise_between(messages, cuts, junk):
    junk = junk.replace(START, b"")
    wire = b"".join(junk + frame(m) for m in messages)
    assert feed_in_chunks(FrameDecoder(), wire, cuts) == [Frame(m) for m in messages]


@settings(max_examples=300, deadline=1000)
@given(noise, st.lists(st.integers(0, 2000), max_size=20), st.integers(1, 64))
def test_arbitrary_bytes_never_raise_and_stay_within_the_limit(wire, cuts, limit):
    decoder = FrameDecoder(max_frame=limit)
    for event in feed_in_chunks(decoder, wire, cuts):
        if isinstance(event, Frame):
            assert len(event.payload) <= limit
        else:
            assert isinstance(event, Oversize) and event.size > limit
        assert decoder.pending <= limit


@settings(max_examples=100, deadline=1000)
@given(st.integers(1, 50), st.integers(0, 400))
def test_an_endless_frame_is_held_within_the_limit_then_reported(limit, extra):
    decoder = FrameDecoder(max_frame=limit)
    decoder.feed(START)
    for _ in range(limit + extra):
        assert decoder.feed(b"y") == []
        assert decoder.pending <= limit
    events = decoder.feed(END)
    if extra:
        # the head keeps the first bytes (up to the overflowing read) to address an ACK
        assert events == [Oversize(head=b"y" * (limit + 1), size=limit + extra)]
    else:
        assert events == [Frame(b"y" * limit)]
