"""The document message formats (docs/message-format.md): /1's spliced encoding is exactly the
JSON the plain encoder gives; /2 frames the same parts as raw bytes after one JSON line; /3 is
/2's line then the parts as one zstd frame; all decode back to the same message, and a /2 or
/3 body whose parts do not add up is refused (a /3 one before anything is decompressed)."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
import zstandard

from gateway.broker import message as message_format
from gateway.broker.message import (
    COMPRESSED_FORMAT,
    FORMAT,
    FRAMED_FORMAT,
    DocumentMessage,
    MalformedMessage,
    decode,
    encode,
)
from gateway.outcome import Attachment
from tests.records.builders import message


def plain_json(m: DocumentMessage) -> bytes:
    body = {
        "format": FORMAT,
        "envelope": m.envelope.to_dict(),
        "payload": base64.b64encode(m.payload).decode("ascii"),
        "attachments": [
            {
                "role": a.role,
                "content_type": a.content_type,
                "data": base64.b64encode(a.data).decode("ascii"),
            }
            for a in m.attachments
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def with_text(m: DocumentMessage) -> DocumentMessage:
    """Non-ASCII, quotes and backslashes where the envelope carries text."""
    env = dataclasses.replace(m.envelope, title='Compte rendu "biologie" \\ hématologie ✓')
    return dataclasses.replace(m, envelope=env)


CASES = {
    "no attachment": message(payload="<doc>é</doc>".encode()),
    "attachments": dataclasses.replace(
        message(payload=b"\x00\xff" * 100),
        attachments=(
            Attachment("report", "application/pdf", b"%PDF-1.7 \x00\x01"),
            Attachment('rôle "x"', "text/plain; charset=utf-8", b""),
        ),
    ),
    "text to escape": with_text(message()),
    "line breaks everywhere": dataclasses.replace(
        message(payload=b"<doc>\n\r\n</doc>\n"),
        envelope=dataclasses.replace(message().envelope, title="deux\nlignes \u2028 \u0085"),
        attachments=(Attachment("source-message", "application/hl7-v2+er7", b"MSH|\rPID|\n"),),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_is_the_plain_json_and_decodes_back(name):
    m = CASES[name]
    body = encode(m)
    assert body == plain_json(m)
    assert decode(body) == m


@pytest.mark.parametrize("name", sorted(CASES))
def test_framed_encoding_carries_the_bytes_after_one_json_line(name):
    m = CASES[name]
    body = encode(m, FRAMED_FORMAT)
    head, _, parts = body.partition(b"\n")
    assert json.loads(head)["format"] == FRAMED_FORMAT
    assert parts == m.payload + b"".join(a.data for a in m.attachments)
    assert decode(body) == m == decode(encode(m))


def test_a_framed_body_whose_parts_do_not_add_up_is_refused():
    m = CASES["attachments"]
    body = encode(m, FRAMED_FORMAT)
    for altered in (body[:-1], body + b"x"):
        with pytest.raises(MalformedMessage, match="do not match the body"):
            decode(altered)
    head, _, parts = body.partition(b"\n")
    data = json.loads(head)
    for size in (-1, True, "3", None):
        bad = {**data, "payload": {"size": size}}
        with pytest.raises(MalformedMessage):
            decode(json.dumps(bad).encode() + b"\n" + parts)
    with pytest.raises(MalformedMessage):  # an unknown format on the first line
        decode(json.dumps({**data, "format": "passerelle.document/9"}).encode() + b"\n" + parts)


def test_the_json_format_written_over_several_lines_still_decodes():
    m = CASES["attachments"]
    assert decode(json.dumps(json.loads(encode(m)), indent=2).encode()) == m


def test_an_unknown_format_is_not_encoded():
    with pytest.raises(ValueError):
        encode(CASES["no attachment"], "passerelle.document/9")


@pytest.mark.parametrize("name", sorted(CASES))
def test_compressed_encoding_is_the_framed_line_then_one_zstd_frame(name):
    m = CASES[name]
    body = encode(m, COMPRESSED_FORMAT)
    head, _, frame = body.partition(b"\n")
    framed_head, _, framed_parts = encode(m, FRAMED_FORMAT).partition(b"\n")
    assert json.loads(head) == {**json.loads(framed_head), "format": COMPRESSED_FORMAT}
    assert zstandard.ZstdDecompressor().decompress(frame) == framed_parts
    assert decode(body) == m


def test_a_converted_lab_report_is_a_fraction_of_its_framed_size():
    report = (b"<observation><code code='2345-7' codeSystem='2.16.840.1.113883.6.1'/>"
              b"<value xsi:type='PQ' value='5.4' unit='mmol/L'/></observation>") * 300  # fmt: skip
    m = dataclasses.replace(CASES["no attachment"], payload=report)
    assert len(encode(m, COMPRESSED_FORMAT)) < len(encode(m, FRAMED_FORMAT)) / 5


def _compressed(head: dict, frame: bytes) -> bytes:
    return json.dumps(head).encode() + b"\n" + frame


def test_a_compressed_body_that_does_not_decode_to_its_declared_sizes_is_refused():
    m = CASES["attachments"]
    head_line, _, frame = encode(m, COMPRESSED_FORMAT).partition(b"\n")
    head = json.loads(head_line)
    parts = b"".join([m.payload, *(a.data for a in m.attachments)])
    compress = zstandard.ZstdCompressor().compress
    refused = {
        "truncated frame": _compressed(head, frame[:-1]),
        "bytes after the frame": _compressed(head, frame + b"x"),
        "two frames": _compressed(head, frame + frame),
        "not zstd": _compressed(head, parts),
        "a byte more inside": _compressed(head, compress(parts + b"x")),
        "a byte less inside": _compressed(head, compress(parts[:-1])),
        "no size in the frame header": _compressed(
            head, zstandard.ZstdCompressor(write_content_size=False).compress(parts)
        ),
        "negative size": _compressed({**head, "payload": {"size": -1}}, frame),
    }
    for case, body in refused.items():
        with pytest.raises(MalformedMessage):
            decode(body)
            pytest.fail(case)


def test_a_small_body_cannot_expand_past_the_bound(monkeypatch):
    """Zeros compress ~20,000:1 and zstd allocates what the frame header says: the header and
    the line are checked against MAX_DECODED_BYTES before any decompression."""
    monkeypatch.setattr(message_format, "MAX_DECODED_BYTES", 1 << 20)
    m = dataclasses.replace(CASES["no attachment"], payload=bytes(1 << 20))
    assert decode(encode(m, COMPRESSED_FORMAT)) == m  # at the bound: read
    m = dataclasses.replace(m, payload=bytes((1 << 20) + 1))
    body = encode(m, COMPRESSED_FORMAT)
    assert len(body) < 2000
    decompressed: list[bytes] = []
    monkeypatch.setattr(zstandard, "ZstdDecompressor", lambda: decompressed.append(b"") or None)
    with pytest.raises(MalformedMessage, match="exceed"):
        decode(body)
    assert decompressed == []  # refused before a decompressor existed
