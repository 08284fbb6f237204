"""The trust store for sender signatures: a PEM bundle of CA certificates.

A sender's signing certificate must chain (through the intermediates its signature carries)
to one of these CAs, every certificate of the chain valid now, the leaf allowed to sign
(KeyUsage digitalSignature). Path building is cryptography's x509.verification.

A chain to a trusted CA says who the certificate belongs to, not that it is the sender's:
SignerIdentity is the subject a sender signs with (the senders file's ``signing_subject``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

from gateway.errors import KeystoreError
from gateway.signing import rules
from gateway.signing.keystore import load_certificates
from gateway.signing.rules import SignatureFault
from gateway.signing.verify import check_validity


def _may_sign(_policy, _cert, key_usage: x509.KeyUsage) -> None:
    if not key_usage.digital_signature:
        raise ValueError("KeyUsage does not allow digitalSignature")


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """The subject distinguished name a sender's signing certificate must carry, whole:
    every attribute, the same values (a certificate naming more, or less, is another one)."""

    subject: x509.Name

    @classmethod
    def parse(cls, text: object) -> SignerIdentity:
        """From an RFC 4514 string (``CN=…,O=…,C=FR``); ValueError naming what is wrong."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("expected a certificate subject such as 'CN=name,O=organisation,C=FR'")
        try:
            subject = x509.Name.from_rfc4514_string(text.strip())
        except ValueError as exc:
            raise ValueError(f"not an RFC 4514 subject ({exc})") from None
        return cls(subject)

    def matches(self, certificate: x509.Certificate) -> bool:
        return _attributes(certificate.subject) == _attributes(self.subject)

    def __str__(self) -> str:
        return self.subject.rfc4514_string()


def _attributes(name: x509.Name) -> list[tuple[str, str]]:
    """The subject's (type, value) pairs in order; the ASN.1 string type is not compared."""
    return [(a.oid.dotted_string, str(a.value)) for a in name]


class TrustStore:
    def __init__(self, anchors: list[x509.Certificate]) -> None:
        if not anchors:
            raise KeystoreError("the trust store holds no CA certificate")
        self._store = verification.Store(anchors)
        self._ee_policy = verification.ExtensionPolicy.permit_all().require_present(
            x509.KeyUsage, verification.Criticality.AGNOSTIC, _may_sign
        )
        self._ca_policy = verification.ExtensionPolicy.webpki_defaults_ca()

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        return cls(load_certificates([path]))

    def signing_certificate(
        self, chain: tuple[x509.Certificate, ...], at: datetime
    ) -> x509.Certificate:
        """The leaf of ``chain`` once it is proven to chain to a trusted CA at ``at``."""
        if not chain:
            raise SignatureFault(rules.UNTRUSTED, "the signature carries no certificate")
        leaf, *intermediates = chain
        check_validity(leaf, at, "signing certificate")
        for cert in intermediates:
            check_validity(cert, at, "an intermediate certificate")
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(at)
            .extension_policies(ee_policy=self._ee_policy, ca_policy=self._ca_policy)
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, intermediates)
        except verification.VerificationError as exc:
            raise SignatureFault(
                rules.UNTRUSTED, f"no chain to a trusted CA for the signing certificate: {exc}"
            ) from None
        return leaf
