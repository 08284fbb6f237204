"""May this sender submit this document? Pure: the sender's grants against the envelope."""

from __future__ import annotations

from gateway.envelope import Envelope
from gateway.findings import Finding, error
from gateway.security.senders import Sender


def document_type(envelope: Envelope) -> str | None:
    """LOINC type code for a document, message type (ORU^R01) for a bare HL7v2 message."""
    if envelope.type_code is not None:
        return envelope.type_code.code
    return envelope.metadata.get("hl7_message_type")


def facilities(envelope: Envelope) -> set[str]:
    """Every organisation the document speaks for: facility, custodian, authors', MSH-4."""
    parties = [envelope.facility, envelope.custodian]
    parties += [a.organisation for a in envelope.authors]
    found = {p.id for p in parties if p is not None and p.id}
    if envelope.metadata.get("hl7_sending_facility"):
        found.add(envelope.metadata["hl7_sending_facility"])
    return found


def authorise(sender: Sender, envelope: Envelope) -> Finding | None:
    """None when allowed; otherwise the finding that says which grant is missing."""
    kind = document_type(envelope)
    if not sender.may_send_type(kind):
        return error(
            "auth.document-type",
            f"sender {sender.id!r} is not allowed to submit documents of type {kind or '(none)'}",
            layer="auth",
            hl7_code=207,
            fix="ask the gateway operator to grant this document type to the sender",
        )
    orgs = facilities(envelope)
    if not sender.may_send_for(orgs):
        return error(
            "auth.facility",
            f"sender {sender.id!r} is not allowed to submit for facility "
            f"{', '.join(sorted(orgs)) or '(none named)'}",
            layer="auth",
            hl7_code=207,
            fix="ask the gateway operator to grant this facility to the sender",
        )
    return None
