"""The envelope seal: proof that a document message's envelope, and where the gateway routed
the document, are what the gateway wrote.

The gateway's XAdES signature covers the payload only; the envelope (patient INS, masking
flags, action, replaces, authors …) travels beside it, and the record consumer files by the
envelope. The seal binds the envelope: HMAC-SHA256 with a secret key shared by the gateway's
intake and its record consumers (GATEWAY_ENVELOPE_KEY_FILE, docs/signing.md), over a
domain-separation prefix, the destinations the gateway routed the document to and the
envelope's compact JSON bytes as carried in the message. The envelope names the payload's
SHA-256, which the consumer checks, so payload and envelope are both bound.

The routing decision is in the MAC because one body is published to every destination of its
format: without it, a body taken from the patient-mailbox or parking queue and published to the
patient-record queue would pass as the gateway's, for a document kept out of the record.

It is not a signature: whoever holds the key can seal anything. Pure; the key is loaded by
gateway.signing.keystore.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Sequence

# Says what the MAC is of: a MAC made with this key for another purpose can never pass here.
# /1 sealed the envelope alone; a /1 seal is no /2 seal (the prefix differs), so it never passes.
DOMAIN = b"passerelle.envelope-seal/2\n"
KEY_BYTES = 32
SEAL_CHARS = 64  # lowercase hex of the 32-byte MAC


def routed_bytes(routed: Sequence[str]) -> bytes:
    """The destinations, in an encoding that is one to one: their count, then each name as a
    netstring (``<UTF-8 length>:<name>,``), then a newline. A name may hold any character and
    two lists give the same bytes only if they are equal; where the list ends, the envelope's
    JSON begins."""
    return _routed_bytes(tuple(routed))


@functools.lru_cache(maxsize=128)  # a routing table makes few distinct decisions: 1 µs saved
def _routed_bytes(routed: tuple[str, ...]) -> bytes:
    names = [name.encode("utf-8", "surrogatepass") for name in routed]
    return b"%d\n%s\n" % (len(names), b"".join(b"%d:%s," % (len(n), n) for n in names))


def seal(key: bytes, routed: Sequence[str], envelope_json: bytes) -> str:
    """The seal of ``envelope_json`` (the envelope's compact JSON bytes) routed to ``routed``
    (destination names, in the order the message carries them): lowercase hex."""
    return hmac.digest(key, DOMAIN + _routed_bytes(tuple(routed)) + envelope_json, "sha256").hex()


def sealed(
    key: bytes, routed: Sequence[str] | None, envelope_json: bytes, given: str | None
) -> bool:
    """Whether ``given`` is the seal of ``envelope_json`` routed to ``routed`` under ``key``
    (in constant time). ``routed`` None: the message names no routing, which no seal covers."""
    if routed is None or not isinstance(given, str) or len(given) != SEAL_CHARS:
        return False
    expected = seal(key, routed, envelope_json).encode()
    return hmac.compare_digest(given.encode("ascii", "replace"), expected)
