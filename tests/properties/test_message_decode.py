"""The document message decoder never crashes: any change to a /1 or /2 body either still
decodes or is refused as MalformedMessage (the record consumer parks it with that reason);
no other exception reaches the consumer."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.broker.message import FORMATS, MalformedMessage, decode, encode
from gateway.outcome import Attachment
from tests.properties.strategies import mutated, noise
from tests.records.builders import message

SEED = dataclasses.replace(
    message(payload=b"<ClinicalDocument>\n\xc3\xa9</ClinicalDocument>"),
    attachments=(Attachment("source-message", "application/hl7-v2+er7", b"MSH|^~\\&|\r"),),
)
BODIES = [encode(SEED, fmt) for fmt in FORMATS]
FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def decoded_or_refused(body: bytes) -> None:
    with contextlib.suppress(MalformedMessage):  # anything else fails the test
        decode(body)


@FAST
@given(st.one_of(*(mutated(b) for b in BODIES)))
def test_mutated_bodies_decode_or_are_refused(body):
    decoded_or_refused(body)


@FAST
@given(st.one_of(noise, st.binary(max_size=300), noise.map(lambda b: BODIES[1][:60] + b)))
def test_any_bytes_decode_or_are_refused(body):
    decoded_or_refused(body)


def test_deeply_nested_json_is_refused_not_raised():
    deep = b"[" * 100_000
    for body in (deep, deep + b"\n", b'{"format":"passerelle.document/2"}\n' + deep):
        with pytest.raises(MalformedMessage):
            decode(body)
