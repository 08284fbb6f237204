"""Signatures senders put on what they send: verified against the trust store, required or
not per sender. Pure: returns findings (rule ids from gateway.signing.rules), never raises.

The sender's signature has the shape the gateway's own has (docs/signing.md): XAdES-BES over
a manifest holding the digest of the exact bytes sent, with its certificate chain in KeyInfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.findings import Finding, error
from gateway.signing import rules
from gateway.signing.rules import SignatureFault
from gateway.signing.trust import TrustStore
from gateway.signing.verify import check, parse

ALL_SENDERS = "*"


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


_FIXES = {
    rules.MISSING: "send the document with its detached XAdES signature",
    rules.EXPIRED: "sign with a certificate that is valid now",
    rules.UNTRUSTED: "sign with a certificate issued under a CA the gateway trusts",
    rules.DIGEST: "sign the exact bytes that are sent",
}


def _finding(rule: str, message: str) -> Finding:
    return error(rule, message, layer="signature", fix=_FIXES.get(rule))
