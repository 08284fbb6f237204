"""The envelope seal: proof that a document message's envelope is the one the gateway wrote.

The gateway's XAdES signature covers the payload only; the envelope (patient INS, masking
flags, action, replaces, authors …) travels beside it, and the record consumer files by the
envelope. The seal binds the envelope: HMAC-SHA256 with a secret key shared by the gateway's
intake and its record consumers (GATEWAY_ENVELOPE_KEY_FILE, docs/signing.md), over a
domain-separation prefix and the envelope's compact JSON bytes as carried in the message. The
envelope names the payload's SHA-256, which the consumer checks, so payload and envelope are
both bound.

It is not a signature: whoever holds the key can seal anything. Pure; the key is loaded by
gateway.signing.keystore.
"""

from __future__ import annotations

import hmac

# Says what the MAC is of: a MAC made with this key for another purpose can never pass here.
DOMAIN = b"passerelle.envelope-seal/1\n"
KEY_BYTES = 32
SEAL_CHARS = 64  # lowercase hex of the 32-byte MAC


def seal(key: bytes, envelope_json: bytes) -> str:
    """The seal of ``envelope_json`` (the envelope's compact JSON bytes): lowercase hex."""
    return hmac.digest(key, DOMAIN + envelope_json, "sha256").hex()


def sealed(key: bytes, envelope_json: bytes, given: str | None) -> bool:
    """Whether ``given`` is the seal of ``envelope_json`` under ``key`` (in constant time)."""
    if not isinstance(given, str) or len(given) != SEAL_CHARS:
        return False
    return hmac.compare_digest(given.encode("ascii", "replace"), seal(key, envelope_json).encode())
