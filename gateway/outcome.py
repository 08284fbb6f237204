"""What the pipeline decided about one submission, and what the sender is told."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gateway.envelope import Envelope
from gateway.findings import Finding, Report


@dataclass(frozen=True, slots=True)
class Attachment:
    """A further part that travels with the document, e.g. the HL7v2 message it came from."""

    role: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Accepted:
    """Valid and signed: ready to publish to ``destinations``."""

    envelope: Envelope
    payload: bytes
    destinations: tuple[str, ...]
    attachments: tuple[Attachment, ...] = ()
    route_reasons: tuple[str, ...] = ()
    related: tuple[Accepted, ...] = ()  # further documents of the same submission

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return self.envelope.warnings


class RejectionKind(enum.StrEnum):
    INVALID = "invalid"  # content breaks rules: HTTP 422, HL7 AE
    UNSUPPORTED = "unsupported"  # message type/version/format not handled: HL7 AR
    UNREADABLE = "unreadable"  # cannot be parsed at all: HL7 AR
    FORBIDDEN = "forbidden"  # the sender may not submit this document: HTTP 403, HL7 AR


@dataclass(frozen=True, slots=True)
class Rejected:
    """Not accepted; the report says why, rule by rule."""

    report: Report
    kind: RejectionKind = RejectionKind.INVALID
    source_kind: str | None = None


Outcome = Accepted | Rejected


class ReceiptStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # durable: the broker confirmed every publish
    REJECTED = "rejected"  # the content was refused; do not resend unchanged
    UNAVAILABLE = "unavailable"  # not durable now; resend later


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a transport tells the sender: built only after the broker answered."""

    status: ReceiptStatus
    message_id: str  # trace id: tracks the message in logs and /messages/{id}
    document_id: str | None = None
    findings: tuple[Finding, ...] = ()
    rejection: RejectionKind | None = None
    reason: str | None = None  # for UNAVAILABLE: what failed, without patient data
    destinations: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        body: dict = {"status": self.status.value, "message_id": self.message_id}
        if self.document_id:
            body["id"] = self.document_id
        if self.destinations:
            body["destinations"] = list(self.destinations)
        if self.reason:
            body["reason"] = self.reason
        if self.rejection:
            body["rejection"] = self.rejection.value
        body["findings"] = [f.to_dict() for f in self.findings]
        return body
