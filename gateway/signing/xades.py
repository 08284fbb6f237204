"""XAdES-BES signing of documents with a key loaded once.

The signature is detached: the document bytes travel unchanged (their SHA-256 in the
envelope stays the hash of what the sender sent, once the ClinicalDocument is isolated), and
the ds:Signature document travels beside them in the envelope. docs/signing.md says why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree
from signxml import methods
from signxml.xades import XAdESSigner

from gateway.envelope import SignatureInfo
from gateway.signing.keystore import SigningKey

FORM = "xades-bes-detached"
REFERENCE_URI = "urn:passerelle:document"


class XadesSigner:
    """The Signer port over one loaded SigningKey."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    def sign(self, payload: bytes) -> tuple[bytes, SignatureInfo]:
        signer = XAdESSigner(
            method=methods.detached,
            signature_algorithm=self._key.algorithm,
            digest_algorithm="sha256",
        )
        signature = signer.sign(
            payload, key=self._key.key, cert=list(self._key.chain), reference_uri=REFERENCE_URI
        )
        return payload, SignatureInfo(
            key_id=self._key.key_id,
            algorithm=self._key.algorithm,
            signed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            form=FORM,
            signature=etree.tostring(signature, encoding="unicode"),
        )
