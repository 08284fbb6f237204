"""A document that passed its format's validation and is ready to be signed and routed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.findings import Finding
from gateway.outcome import Attachment


@dataclass(frozen=True, slots=True)
class Document:
    """What a format intake hands to the common steps (sign → normalise → route).

    ``fields`` are Envelope keyword arguments read from the content (document id, patient,
    codes …); the pipeline adds what only it knows (hash, size, sender, times, signature).
    ``related`` holds further documents of the same submission (an HL7v2 ORU may carry a
    level-1 and a level-3 CDA of one report): accepted or refused together, published together.
    """

    payload: bytes
    content_type: str
    source_kind: str
    fields: dict[str, Any]
    warnings: tuple[Finding, ...] = ()
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    signable: bool = True
    related: tuple[Document, ...] = ()
