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


def accountable(envelope: Envelope) -> tuple[set[str], str]:
    """The organisations the sender must be granted for this document, and why.

    The custodian is the organisation responsible for the document: it decides. Authors'
    organisations and the facility are what the document says of itself, so one granted among
    them proves nothing; without a custodian, every organisation named must be granted."""
    if envelope.custodian is not None and envelope.custodian.id:
        return {envelope.custodian.id}, "the document's custodian"
    return facilities(envelope), "named by a document without custodian"


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
    orgs, why = accountable(envelope)
    missing = sender.ungranted(orgs or {"(none named)"})  # naming none: only "*" may send
    if missing:
        return error(
            "auth.facility",
            f"sender {sender.id!r} is not allowed to submit for facility "
            f"{', '.join(sorted(missing))} ({why})",
            layer="auth",
            hl7_code=207,
            fix="ask the gateway operator to grant this facility to the sender",
        )
    return None
