"""The document message formats (docs/message-format.md): /1's spliced encoding is exactly the
JSON the plain encoder gives; /2 frames the same parts as raw bytes after one JSON line; both
decode back to the same message, and a /2 body whose parts do not add up is refused."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from gateway.broker.message import (
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
        decode(json.dumps({**data, "format": "passerelle.document/3"}).encode() + b"\n" + parts)


def test_the_json_format_written_over_several_lines_still_decodes():
    m = CASES["attachments"]
    assert decode(json.dumps(json.loads(encode(m)), indent=2).encode()) == m


def test_an_unknown_format_is_not_encoded():
    with pytest.raises(ValueError):
        encode(CASES["no attachment"], "passerelle.document/9")
