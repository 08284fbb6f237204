"""MLLP framing: what real links do to frames."""

from gateway.adapters.hl7v2.mllp import Frame, FrameDecoder, Malformed, Oversize, frame

MSG = b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rPID|||1\r"


def test_one_frame():
    assert FrameDecoder().feed(frame(MSG)) == [Frame(MSG)]


def test_frame_split_across_every_byte():
    d = FrameDecoder()
    out = []
    for b in frame(MSG):
        out += d.feed(bytes([b]))
    assert out == [Frame(MSG)]


def test_end_marker_split_between_reads():
    d = FrameDecoder()
    wire = frame(MSG)
    assert d.feed(wire[:-1]) == []  # FS seen, CR still to come: the frame is not over yet
    assert d.in_frame
    assert d.feed(wire[-1:]) == [Frame(MSG)]
    assert not d.in_frame


def test_many_frames_in_one_read_and_noise_between():
    d = FrameDecoder()
    wire = b"garbage" + frame(MSG) + b"\r\n" + frame(MSG + b"X") + b"junk"
    assert d.feed(wire) == [Frame(MSG), Frame(MSG + b"X")]
    assert d.noise == len(b"garbage") + 2 + 4


def test_oversize_frame_is_reported_and_skipped():
    d = FrameDecoder(max_frame=100)
    big = MSG + b"OBX|" + b"9" * 500
    events = d.feed(frame(big) + frame(MSG))
    assert isinstance(events[0], Oversize)
    assert events[0].head.startswith(b"MSH|")
    assert events[0].size == len(big)
    assert events[1] == Frame(MSG)
    assert d.pending == 0


def test_oversize_across_reads_never_buffers_past_the_limit():
    d = FrameDecoder(max_frame=1000)
    d.feed(b"\x0b" + MSG)
    for _ in range(100):
        d.feed(b"A" * 1000)
        assert d.pending <= 1000
    [event] = d.feed(b"\x1c\r")
    assert isinstance(event, Oversize) and event.size == len(MSG) + 100_000


def test_a_new_start_block_abandons_an_unfinished_frame():
    d = FrameDecoder()
    assert d.feed(b"\x0bMSH|partial" + frame(MSG)) == [Frame(MSG)]


def test_a_lone_fs_inside_a_frame_makes_the_whole_frame_bad():
    """FS not followed by CR does not end the frame: the frame is reported whole as
    malformed (never its first part as a message, the rest as noise)."""
    stray = MSG + b"NTE|1||voir\x1c commentaire\rOBX|3|NM|2823-3^K^LN||7.2\r"
    d = FrameDecoder()
    events = d.feed(frame(stray) + frame(MSG))
    assert events == [Malformed(head=stray, size=len(stray)), Frame(MSG)]
    assert d.noise == 0


def test_an_fs_last_in_a_read_waits_for_the_next_byte():
    d = FrameDecoder()
    head, tail = MSG[:20], MSG[20:]
    assert d.feed(b"\x0b" + head + b"\x1c") == []
    [event] = d.feed(tail + b"\x1c\r")  # the FS was not followed by CR: bad frame
    assert isinstance(event, Malformed) and event.head == head + b"\x1c" + tail
