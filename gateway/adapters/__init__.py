"""Format adapters: turn bytes of one format (CDA, HL7v2) into models and envelope fields.

These are *format* adapters and pure; the I/O edges live in gateway.api, gateway.broker,
gateway.records and the HL7v2 listener.
"""

from __future__ import annotations

_BOM = b"\xef\xbb\xbf"
_MLLP_BYTES = b"\x0b\x1c\r\n\t "


def detect(raw: bytes) -> str | None:
    """Say which format ``raw`` is in, from its content alone (never from the transport).

    Returns ``"hl7v2"`` for an ER7 message starting with MSH (optionally still MLLP framed),
    ``"cda"`` for anything XML, ``None`` otherwise.
    """
    head = raw[:64].removeprefix(_BOM).lstrip(_MLLP_BYTES)
    if head.startswith(b"MSH"):
        return "hl7v2"
    if head.startswith(b"<"):
        return "cda"
    return None
