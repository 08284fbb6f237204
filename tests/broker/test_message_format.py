"""The document message's JSON (docs/message-format.md): the spliced encoding is exactly the
JSON the plain encoder gives, and decodes back to the same message."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from gateway.broker.message import FORMAT, DocumentMessage, decode, encode
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
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_is_the_plain_json_and_decodes_back(name):
    m = CASES[name]
    body = encode(m)
    assert body == plain_json(m)
    assert decode(body) == m
