"""The consumer's verifier: picks the key by id, accepts rotated keys, refuses stripped ones."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

from gateway.envelope import Envelope
from gateway.signing import rules
from gateway.signing.verifier import GatewayVerifier
from gateway.signing.xades import XadesSigner
from tests.signing.pki import NOW, issue


def envelope(payload: bytes, signer: XadesSigner | None, content_type="application/hl7-cda+xml"):
    info = signer.sign(payload)[1] if signer else None
    return Envelope(
        document_id="1.2.3^1",
        source_kind="cda",
        content_type=content_type,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        sender="s",
        received_at=NOW.isoformat(),
        trace_id="t",
        signature=info,
    )


def test_rotation_both_keys_verify_each_picked_by_its_id(cda):
    old, new = issue("key-2025"), issue("key-2026", algorithm="rsa")
    verifier = GatewayVerifier([new.cert, old.cert])
    for issued in (old, new):
        env = envelope(cda, XadesSigner(issued.signing_key()))
        result = verifier.verify(env, cda)
        assert result.valid, result
        assert result.key_id == env.signature.key_id == issued.signing_key().key_id


def test_key_no_longer_accepted_is_refused_by_id(cda):
    old, new = issue("retired"), issue("current")
    env = envelope(cda, XadesSigner(old.signing_key()))
    result = GatewayVerifier([new.cert]).verify(env, cda)
    assert not result.valid and result.rule == rules.UNKNOWN_KEY


def test_envelope_naming_another_key_than_the_signature_is_refused(cda):
    a, b = issue("a"), issue("b")
    env = envelope(cda, XadesSigner(a.signing_key()))
    relabelled = dataclasses.replace(
        env, signature=dataclasses.replace(env.signature, key_id=b.signing_key().key_id)
    )
    result = GatewayVerifier([a.cert, b.cert]).verify(relabelled, cda)
    assert not result.valid and result.rule == rules.UNKNOWN_KEY


def test_tampered_payload_is_refused_with_the_digest_rule(cda):
    key = issue("k")
    env = envelope(cda, XadesSigner(key.signing_key()))
    result = GatewayVerifier([key.cert]).verify(env, cda.replace(b"mmol", b"mmoL", 1))
    assert not result.valid and result.rule == rules.DIGEST


def test_cda_with_its_signature_stripped_is_refused(cda):
    result = GatewayVerifier([issue("k").cert]).verify(envelope(cda, None), cda)
    assert not result.valid and result.rule == rules.MISSING


def test_unsigned_hl7v2_message_passes(cda):
    env = envelope(b"MSH|^~\\&|...", None, content_type="application/hl7-v2+er7")
    assert GatewayVerifier([]).verify(env, b"MSH|^~\\&|...").valid


def test_expired_gateway_certificate_is_refused(cda):
    key = issue("k", not_after=NOW + timedelta(hours=1))
    env = envelope(cda, XadesSigner(key.signing_key()))
    result = GatewayVerifier([key.cert]).verify(env, cda, now=NOW + timedelta(days=2))
    assert not result.valid and result.rule == rules.EXPIRED


def test_cda_relabelled_as_another_content_type_still_needs_its_signature(cda):
    relabelled = envelope(cda, None, content_type="application/hl7-v2+er7")
    result = GatewayVerifier([issue("k").cert]).verify(relabelled, cda)
    assert not result.valid and result.rule == rules.MISSING
