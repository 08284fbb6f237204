"""Signing: the gateway's XAdES signature over every accepted document, and its keys.

Two ports: a Signer (pipeline, before publishing) and a Verifier (consumers, before filing).
docs/signing.md explains the signature's shape (IHE DSG-style detached XAdES-BES over a
manifest holding the document's SHA-256) and the rule ids a failed check reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.envelope import Envelope, SignatureInfo


class Signer(Protocol):
    """Signs a document. Returns the payload to publish (unchanged for a detached signature)."""

    def sign(self, payload: bytes) -> tuple[bytes, SignatureInfo]: ...


@dataclass(frozen=True, slots=True)
class Verification:
    """Whether a document is exactly what the gateway signed; ``rule`` and ``reason`` say
    why not (``rule`` is one of gateway.signing.rules)."""

    valid: bool
    reason: str | None = None
    key_id: str | None = None
    rule: str | None = None


class Verifier(Protocol):
    def verify(self, envelope: Envelope, payload: bytes) -> Verification: ...
