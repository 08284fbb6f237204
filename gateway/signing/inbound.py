"""Signatures senders put on what they send: verified against the trust store, required or
not per sender. Pure: returns findings (rule ids from gateway.signing.rules), never raises.

The sender's signature has the shape the gateway's own has (docs/signing.md): XAdES-BES over
a manifest holding the digest of the exact bytes sent, with its certificate chain in KeyInfo.

A trusted chain is not enough: any holder of a certificate from a trusted CA could sign for any
sender. ``signed_by`` ties the signature to the certificate the sender signs with (the senders
file's ``signing_subject``, gateway.security.senders); the service asks it once it knows the
authenticated sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.findings import Finding, error
from gateway.signing import rules
from gateway.signing.rules import SignatureFault
from gateway.signing.trust import SignerIdentity, TrustStore
from gateway.signing.verify import check, parse

ALL_SENDERS = "*"
# the signing certificate is not the sender's (beside the rules of gateway.signing.rules)
SIGNER = "signature.signer"


@dataclass(frozen=True)
class SenderPolicy:
    """Senders whose documents must arrive signed (``*``: every sender); others may sign."""

    must_sign: frozenset[str] = frozenset()

    def requires(self, sender: str) -> bool:
        return ALL_SENDERS in self.must_sign or sender in self.must_sign


@dataclass(frozen=True)
class InboundSignatures:
    policy: SenderPolicy
    trust: TrustStore | None = None

    def check(
        self, raw: bytes, signature: bytes | None, sender: str, now: datetime | None = None
    ) -> list[Finding]:
        if signature is None:
            if self.policy.requires(sender):
                return [
                    _finding(
                        rules.MISSING,
                        "this sender's documents must be signed; no signature came with it",
                    )
                ]
            return []
        if self.trust is None:
            return [
                _finding(rules.UNTRUSTED, "signed documents need a trust store (none configured)")
            ]
        now = now or datetime.now(UTC)
        try:
            parsed = parse(signature)
            check(parsed, raw, self.trust.signing_certificate(parsed.chain, now), now)
        except SignatureFault as fault:
            return [_finding(fault.rule, fault.message)]
        return []

    def signed_by(
        self, signature: bytes | None, sender: str, identity: SignerIdentity | None
    ) -> list[Finding]:
        """Findings when ``signature`` (already verified by ``check``) was not made with the
        certificate ``sender`` signs with. A sender that must sign and names no certificate
        is refused: whatever trusted certificate signed, nothing ties it to that sender."""
        if signature is None:
            return []
        if identity is None:
            if not self.policy.requires(sender):
                return []  # signing is optional for it: the chain to the trust store suffices
            return [
                _finding(
                    SIGNER,
                    f"sender {sender!r} must sign but the gateway has no signing certificate "
                    "on record for it, so no signature can be tied to it",
                )
            ]
        try:
            chain = parse(signature).chain
        except SignatureFault as fault:
            return [_finding(fault.rule, fault.message)]
        if not chain:
            return [_finding(rules.UNTRUSTED, "the signature carries no certificate")]
        if identity.matches(chain[0]):
            return []
        return [
            _finding(
                SIGNER,
                f"the document is signed with the certificate of "
                f"{chain[0].subject.rfc4514_string()!r}, not with the one sender {sender!r} "
                f"signs with ({str(identity)!r})",
            )
        ]


_FIXES = {
    rules.MISSING: "send the document with its detached XAdES signature",
    rules.EXPIRED: "sign with a certificate that is valid now",
    rules.UNTRUSTED: "sign with a certificate issued under a CA the gateway trusts",
    rules.DIGEST: "sign the exact bytes that are sent",
    SIGNER: "sign with the sender's own certificate, the one named in the gateway's senders "
    "file (signing_subject); ask the gateway operator to record a new certificate",
}


def _finding(rule: str, message: str) -> Finding:
    return error(rule, message, layer="signature", fix=_FIXES.get(rule))
