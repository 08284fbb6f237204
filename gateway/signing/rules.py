"""Rule ids of signature checks: the same names in rejections, parked messages and the CLI.

Each names one precise cause, so an operator can tell a tampered document from an expired
certificate without reading the signature.
"""

from __future__ import annotations

MISSING = "signature.missing"  # required (sender policy, or a CDA at the consumer) but absent
MALFORMED = "signature.malformed"  # not a parseable XAdES signature with one document manifest
DIGEST = "signature.digest"  # the document is not the one whose digest was signed
INVALID = "signature.invalid"  # SignatureValue does not verify: signature or SignedInfo altered
SIGNED_PROPERTIES = "signature.signed-properties"  # signing time / certificate digest altered
CERTIFICATE = "signature.certificate"  # KeyInfo certificate differs from the signing key's
SIGNING_TIME = "signature.signing-time"  # absent, in the future, or outside the cert's validity
EXPIRED = "signature.expired"  # a certificate of the chain is not valid now
UNTRUSTED = "signature.untrusted"  # no chain to the trust store
UNKNOWN_KEY = "signature.unknown-key"  # the key id names no key this verifier accepts


class SignatureFault(Exception):
    """A signature check failed: ``rule`` (above) and a message without patient data."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
