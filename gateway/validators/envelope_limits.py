"""Lengths the broker and the record store can hold, checked before a document is accepted.

An identifier longer than its column would be accepted here, then refused by PostgreSQL after
the sender was told "accepted" (SQLite stores it: the two stores would disagree); a document
id over 255 bytes cannot be an AMQP message id at all, so no publish could carry it and the
sender would be told "unavailable" at every attempt. Refused at once instead, naming the
field. Pure; the limits follow gateway/records/schema.py and AMQP's short strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from gateway.envelope import Envelope
from gateway.findings import Finding, error

AMQP_SHORT_STRING = 255  # bytes: AMQP's message_id property

# (field, where a CDA says it, the most characters the store holds, its values in an envelope)
_FIELDS: tuple[tuple[str, str, int, Callable[[Envelope], Iterator[str | None]]], ...] = (
    ("set_id", "/ClinicalDocument/setId", 256, lambda e: iter((e.set_id,))),
    (
        "replaces",
        "/ClinicalDocument/relatedDocument/parentDocument/id",
        256,
        lambda e: iter((e.replaces,)),
    ),
    (
        "type_code",
        "/ClinicalDocument/code/@code",
        64,
        lambda e: iter((e.type_code.code if e.type_code else None,)),
    ),
    (
        "patient.ins_system",
        "/ClinicalDocument/recordTarget",
        64,
        lambda e: iter((e.patient.ins_system,)),
    ),
    (
        "creation_time",
        "/ClinicalDocument/effectiveTime/@value",
        32,
        lambda e: iter((e.creation_time,)),
    ),
    (
        "facility.id",
        "/ClinicalDocument/componentOf",
        64,
        lambda e: iter((e.facility.id if e.facility else None,)),
    ),
    (
        "authors.id",
        "/ClinicalDocument/author/assignedAuthor/id",
        64,
        lambda e: (a.id for a in e.authors),
    ),
    (
        "authors.organisation.id",
        "/ClinicalDocument/author/assignedAuthor/representedOrganization/id",
        64,
        lambda e: (a.organisation.id if a.organisation else None for a in e.authors),
    ),
)


def beyond_limits(envelope: Envelope) -> list[Finding]:
    """A finding for each identifier of ``envelope`` longer than the gateway can carry."""
    findings = []
    if len(envelope.document_id.encode("utf-8")) > AMQP_SHORT_STRING:
        findings.append(
            _too_long("document_id", "/ClinicalDocument/id", AMQP_SHORT_STRING, "bytes")
        )
    for name, where, most, values in _FIELDS:
        if any(v is not None and len(v) > most for v in values(envelope)):
            findings.append(_too_long(name, where, most, "characters"))
    return findings


def _too_long(name: str, where: str, most: int, unit: str) -> Finding:
    return error(
        f"envelope.too-long.{name}",
        f"{name} is longer than {most} {unit}, more than the gateway can file or carry",
        location=where,
        layer="envelope",
        hl7_code=102,
        fix=f"send a {name} of at most {most} {unit} (identifiers are OIDs and short extensions)",
    )
