"""Signing: the gateway's XAdES signature over every accepted document, and its keys."""

from typing import Protocol

from gateway.envelope import SignatureInfo


class Signer(Protocol):
    """Signs a document. Returns the payload to publish (unchanged for a detached signature)."""

    def sign(self, payload: bytes) -> tuple[bytes, SignatureInfo]: ...
