"""Sender signatures: verified against the trust store; unsigned documents per sender policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.signing import rules
from gateway.signing.inbound import SIGNER, InboundSignatures, SenderPolicy
from gateway.signing.trust import SignerIdentity, TrustStore
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


def test_the_signature_must_be_made_with_the_senders_own_certificate(inbound, lab, sender_ca, cda):
    other = issue("Clinique Concurrente", sender_ca)  # chains to the same trusted CA
    identity = SignerIdentity(lab.cert.subject)
    assert inbound.check(cda, sender_signature(other, cda), "lab-1") == []  # trusted chain
    [finding] = inbound.signed_by(sender_signature(other, cda), "lab-1", identity)
    assert finding.rule == SIGNER and finding.layer == "signature" and finding.fix
    assert (
        "CN=Clinique Concurrente" in finding.message and "CN=Laboratoire Exemple" in finding.message
    )
    assert inbound.signed_by(sender_signature(lab, cda), "lab-1", identity) == []


def test_a_sender_that_must_sign_with_no_certificate_on_record_is_refused(inbound, lab, cda):
    [finding] = inbound.signed_by(sender_signature(lab, cda), "lab-1", None)
    assert finding.rule == SIGNER and "no signing certificate on record" in finding.message
    # a sender free not to sign: the chain to the trust store is all that is asked
    assert inbound.signed_by(sender_signature(lab, cda), "lab-2", None) == []
    assert inbound.signed_by(None, "lab-1", None) == []  # absent: check() said so already


def test_a_signer_identity_is_the_whole_subject(lab):
    assert SignerIdentity.parse("CN=Laboratoire Exemple,O=Passerelle tests,C=FR").matches(lab.cert)
    assert not SignerIdentity.parse("CN=Laboratoire Exemple").matches(lab.cert)
    assert not SignerIdentity.parse("CN=Laboratoire Exemple,O=Other,C=FR").matches(lab.cert)
    with pytest.raises(ValueError, match="RFC 4514"):
        SignerIdentity.parse("Laboratoire Exemple")
