"""GatewayVerifier: the Verifier port for consumers: is this exactly what the gateway signed?

It accepts signatures by any key of its keyring (the current key and retired ones, so that
rotation never strands messages in flight) and picks the certificate by the key id the
signature names; the certificate carried in the signature is never trusted by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cryptography import x509

from gateway.adapters import detect
from gateway.envelope import Envelope
from gateway.signing import Verification, rules, shape
from gateway.signing.keystore import key_id_of
from gateway.signing.rules import SignatureFault
from gateway.signing.verify import MAX_SIGNATURE_BYTES, SignedFacts, check, check_own, parse

# Content the gateway always signs: arriving without a signature means it was stripped.
SIGNED_CONTENT_TYPES = frozenset({"application/hl7-cda+xml"})
SIGNED_FORMATS = frozenset({"cda"})  # what gateway.adapters.detect says of the payload


class GatewayVerifier:
    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        self.keyring = {key_id_of(c): c for c in certificates}

    def verify(
        self, envelope: Envelope, payload: bytes, now: datetime | None = None
    ) -> Verification:
        info = envelope.signature
        if info is None or not info.signature:
            # Decided from the payload as well as the envelope: the envelope travels beside
            # the payload unsigned, so relabelling a CDA must not make its signature optional.
            if envelope.content_type in SIGNED_CONTENT_TYPES or detect(payload) in SIGNED_FORMATS:
                return Verification(
                    False, "the document has no gateway signature", None, rules.MISSING
                )
            return Verification(True)
        try:
            key_id, _ = self.check(info.signature, payload, now, expected_key=info.key_id)
        except SignatureFault as fault:
            return Verification(False, fault.message, info.key_id, fault.rule)
        return Verification(True, key_id=key_id)

    def check(
        self,
        signature: bytes | str,
        payload: bytes,
        now: datetime | None = None,
        expected_key: str | None = None,
    ) -> tuple[str, SignedFacts]:
        """(key id, what the signature proves), or SignatureFault.

        The gateway's own signatures are checked without XML processing (verify.check_own);
        any other signature, or one of them it cannot decide, by signxml."""
        own = _own(signature)
        if own is not None:
            certificate = self._certificate(own.key_name, expected_key)
            facts = check_own(own, payload, certificate, now)
            if facts is not None:
                return own.key_name, facts
        parsed = parse(signature)
        key_id = parsed.key_name or ""
        certificate = self._certificate(key_id, expected_key)
        return key_id, check(parsed, payload, certificate, now)

    def _certificate(self, key_id: str, expected_key: str | None) -> x509.Certificate:
        if expected_key is not None and key_id != expected_key:
            raise SignatureFault(
                rules.UNKNOWN_KEY, "the envelope names another key than the signature"
            )
        certificate = self.keyring.get(key_id)
        if certificate is None:
            raise SignatureFault(rules.UNKNOWN_KEY, f"no accepted key has id {key_id!r}")
        return certificate


def _own(signature: bytes | str) -> shape.OwnSignature | None:
    if len(signature) > MAX_SIGNATURE_BYTES:
        return None  # refused by parse(), as any other too large signature
    if isinstance(signature, bytes):
        try:
            signature = signature.decode("ascii")  # the shape is ASCII throughout
        except UnicodeDecodeError:
            return None
    return shape.read(signature)
