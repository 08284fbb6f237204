"""Signing: the gateway's XAdES signature over every accepted document, and its keys.

Two ports: a Signer (pipeline, before publishing) and a Verifier (consumers, before filing).
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
    """Whether a document is exactly what the gateway signed; ``reason`` says why not."""

    valid: bool
    reason: str | None = None
    key_id: str | None = None


class Verifier(Protocol):
    def verify(self, envelope: Envelope, payload: bytes) -> Verification: ...
