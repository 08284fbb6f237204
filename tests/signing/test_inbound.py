"""Sender signatures: verified against the trust store; unsigned documents per sender policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.signing import rules
from gateway.signing.inbound import InboundSignatures, SenderPolicy
from gateway.signing.trust import TrustStore
from gateway.signing.xades import XadesSigner
from tests.signing.pki import NOW, issue


def sender_signature(leaf, payload: bytes, *chain) -> bytes:
    return XadesSigner(leaf.signing_key(*chain)).sign(payload)[1].signature.encode()


@pytest.fixture(scope="module")
def lab(sender_ca):
    return issue("Laboratoire Exemple", sender_ca)


@pytest.fixture
def inbound(sender_ca):
    return InboundSignatures(SenderPolicy(frozenset({"lab-1"})), TrustStore([sender_ca.cert]))


def rule_of(findings) -> str | None:
    assert len(findings) <= 1
    return findings[0].rule if findings else None


def test_document_signed_under_a_trusted_ca_is_accepted(inbound, lab, cda):
    assert inbound.check(cda, sender_signature(lab, cda), "lab-1") == []


def test_chain_through_an_intermediate_carried_in_the_signature(sender_ca, cda):
    intermediate = issue("Sender sub-CA", sender_ca, ca=True)
    leaf = issue("Cabinet", intermediate, algorithm="rsa")
    store = InboundSignatures(SenderPolicy(), TrustStore([sender_ca.cert]))
    assert store.check(cda, sender_signature(leaf, cda, intermediate.cert), "x") == []
    # Without the intermediate no chain can be built.
    assert rule_of(store.check(cda, sender_signature(leaf, cda), "x")) == rules.UNTRUSTED


def test_signature_under_an_unknown_ca_is_untrusted(inbound, cda):
    rogue = issue("Rogue", issue("Rogue CA", ca=True))
    assert rule_of(inbound.check(cda, sender_signature(rogue, cda), "lab-1")) == rules.UNTRUSTED


def test_self_signed_sender_certificate_is_untrusted(inbound, cda):
    assert rule_of(inbound.check(cda, sender_signature(issue("self"), cda), "x")) == rules.UNTRUSTED


def test_expired_sender_certificate_is_rejected_as_expired(inbound, sender_ca, cda):
    leaf = issue(
        "old", sender_ca, not_before=NOW - timedelta(days=5), not_after=NOW + timedelta(hours=1)
    )
    signature = sender_signature(leaf, cda)
    later = NOW + timedelta(days=1)
    assert rule_of(inbound.check(cda, signature, "lab-1", now=later)) == rules.EXPIRED


def test_document_altered_after_the_sender_signed_is_rejected(inbound, lab, cda):
    signature = sender_signature(lab, cda)
    finding = inbound.check(cda.replace(b"mmol", b"mmoL", 1), signature, "lab-1")[0]
    assert finding.rule == rules.DIGEST and finding.is_error and finding.layer == "signature"


def test_sender_that_must_sign_is_rejected_unsigned_others_are_not(inbound, cda):
    assert rule_of(inbound.check(cda, None, "lab-1")) == rules.MISSING
    assert inbound.check(cda, None, "lab-2") == []


def test_policy_star_requires_every_sender_to_sign(cda):
    policy = InboundSignatures(SenderPolicy(frozenset({"*"})))
    assert rule_of(policy.check(cda, None, "anyone")) == rules.MISSING


def test_signed_document_without_a_trust_store_is_untrusted(lab, cda):
    none = InboundSignatures(SenderPolicy())
    assert rule_of(none.check(cda, sender_signature(lab, cda), "x")) == rules.UNTRUSTED


def test_garbage_signature_is_malformed(inbound, cda):
    assert rule_of(inbound.check(cda, b"(not base64)", "lab-1")) == rules.MALFORMED
