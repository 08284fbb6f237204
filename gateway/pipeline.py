"""ingest(submission, tools) → Accepted | Rejected: parse → validate → sign → normalise → route.

Pure: no sockets, no broker, no database. Publishing happens after, at the edge
(gateway.service). Each step is a function of its inputs and of ``tools`` — the loaded,
read-only things the steps need (validators, signing key, routing table).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

from gateway.adapters import detect
from gateway.adapters.cda import intake as cda_intake
from gateway.adapters.cda.parser import CdaLimits
from gateway.adapters.hl7v2 import intake as hl7v2_intake
from gateway.adapters.hl7v2.crbio import Laboratory
from gateway.document import Document
from gateway.envelope import Envelope, SignatureInfo
from gateway.findings import Finding, Report, error
from gateway.outcome import Accepted, Outcome, Rejected, RejectionKind
from gateway.routing.table import RoutingTable
from gateway.signing import Signer
from gateway.signing.inbound import InboundSignatures
from gateway.submission import Submission
from gateway.validators.cda import CdaValidator
from gateway.validators.envelope_limits import beyond_limits
from gateway.validators.ins import test_ins_refused


@dataclass(frozen=True)
class Checks:
    """What reading and validating need (also all that `gateway validate` needs)."""

    cda_limits: CdaLimits = field(default_factory=CdaLimits)
    cda_validator: CdaValidator = field(default_factory=CdaValidator)
    laboratory: Laboratory = field(default_factory=Laboratory)  # for lab results → CR-BIO
    accept_test_ins: bool = True  # GATEWAY_TEST_INS: refuse in production


@dataclass(frozen=True)
class Tools:
    """Everything the pure steps need, loaded once at start (see gateway.bootstrap)."""

    signer: Signer
    routing: RoutingTable
    checks: Checks = field(default_factory=Checks)
    inbound: InboundSignatures | None = None  # sender signatures and who must sign
    # Seals the envelope of every document message published (gateway.service, signing/seal)
    seal_key: bytes | None = field(default=None, repr=False)


def ingest(submission: Submission, tools: Tools) -> Outcome:
    if tools.inbound is not None:
        findings = tools.inbound.check(submission.raw, submission.signature, submission.sender)
        if findings:
            return Rejected(Report.of(findings), RejectionKind.INVALID)
    document = read(submission, tools.checks)
    if isinstance(document, Rejected):
        return document
    accepted = accept(document, submission, tools)
    related = tuple(accept(d, submission, tools) for d in document.related)
    refused = [f for a in (accepted, *related) for f in _refusals(a.envelope, tools.checks)]
    if refused:  # accepted whole or refused whole, like every document of a message
        return Rejected(Report.of(refused), RejectionKind.INVALID)
    return dataclasses.replace(accepted, related=related) if related else accepted


def _refusals(envelope: Envelope, checks: Checks) -> list[Finding]:
    """What the envelope as a whole cannot be: longer than the gateway can carry, or a test
    patient where real records are kept."""
    found = beyond_limits(envelope)
    if not checks.accept_test_ins:
        where = (
            "/ClinicalDocument/recordTarget/patientRole/id"
            if envelope.source_kind == "cda"
            else "PID-3"
        )
        found += test_ins_refused(envelope.patient.ins_system, where, "ins")
    return found


def accept(document: Document, submission: Submission, tools: Tools) -> Accepted:
    """Sign → normalise → route one valid document."""
    payload, signature = sign(document, tools.signer)
    envelope = normalise(document, payload, signature, submission)
    decision = tools.routing.decide(envelope)
    return Accepted(
        envelope=envelope,
        payload=payload,
        destinations=decision.destinations,
        attachments=document.attachments,
        route_reasons=decision.reasons,
    )


def read(submission: Submission, checks: Checks) -> Document | Rejected:
    """Parse and validate, whatever the format: the format is told by the content."""
    kind = detect(submission.raw)
    if kind == "cda":
        document, _ = cda_intake.read(submission.raw, checks.cda_limits, checks.cda_validator)
        return document
    if kind == "hl7v2":
        return hl7v2_intake.read(
            submission.raw,
            submission.sender,
            checks.cda_limits,
            checks.cda_validator,
            checks.laboratory,
        )
    return Rejected(
        Report.of(
            [
                error(
                    "input.format",
                    "input is neither an HL7v2 message (starting with MSH) nor an XML document",
                    layer="input",
                    fix="send a CDA R2 XML document or an HL7v2 ER7 message",
                )
            ]
        ),
        RejectionKind.UNREADABLE,
    )


def sign(document: Document, signer: Signer) -> tuple[bytes, SignatureInfo | None]:
    if not document.signable:
        return document.payload, None
    return signer.sign(document.payload)


def normalise(
    document: Document, payload: bytes, signature: SignatureInfo | None, submission: Submission
) -> Envelope:
    """The envelope: what the content said, plus what only the gateway knows."""
    return Envelope(
        **{
            **document.fields,
            "source_kind": document.source_kind,
            "content_type": document.content_type,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
            "sender": submission.sender,
            "received_at": submission.received_at.isoformat(timespec="milliseconds"),
            "trace_id": submission.trace_id,
            "signature": signature,
            "warnings": document.warnings,
        }
    )
