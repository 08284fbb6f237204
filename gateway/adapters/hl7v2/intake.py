"""HL7v2 intake: parse → accept type/version → validate → the document(s) it carries. Pure.

A message that carries CDA documents (OBX value type ED, ``^TEXT^XML^Base64^…``; an ORU may
carry a level-1 and a level-3 version of one report) yields them, each judged by the CDA intake
like any CDA, then completed by what the message says around them (MetaDMPMSS flags, OBX-11
action, PRT recipients). Anything in a document OBX that is not a valid CDA refuses the whole
message: placeholder text must never reach a patient record.

A raw lab-results ORU^R01 (IHE LAB-3, no document OBX) is converted into a CR-BIO CDA
(gateway.adapters.hl7v2.crbio), validated like any CDA, with the message kept beside it.

One patient per message: the gateway files every message into one patient record, so a
message whose PATIENT_RESULT group repeats (a second PID) is refused (AE, ERR at that PID)
rather than converted or filed under its first patient.
"""

from __future__ import annotations

from typing import Any

from gateway.adapters.cda import intake as cda_intake
from gateway.adapters.cda.parser import CdaLimits
from gateway.adapters.hl7v2 import crbio, transport
from gateway.adapters.hl7v2.parser import Message, parse
from gateway.adapters.hl7v2.transport import DocumentObx, Transport
from gateway.document import Document
from gateway.findings import Finding, Report, error, warning
from gateway.outcome import Attachment, Rejected, RejectionKind
from gateway.validators import hl7v2_structure
from gateway.validators.cda import CdaValidator

CONTENT_TYPE = "application/hl7-v2+er7"
LAYER = "hl7v2"


def message_document_id(sender: str, msg: Message) -> str:
    """The id of the CR-BIO a raw ORU^R01 converts to: from what identifies the report (sender,
    application, facility, order number, version), never from MSH-10 or MSH-7, so that the same
    report sent again (a lost ACK, a new MSH-10) is a duplicate for the record store, not a
    conflict parked after its AA."""
    return crbio.report_id(msg, sender)


def read(
    raw: bytes,
    sender: str,
    limits: CdaLimits,
    validator: CdaValidator,
    lab: crbio.Laboratory | None = None,
) -> Document | Rejected:
    msg, findings = parse(raw)
    if msg is None:
        return Rejected(Report.of(findings), RejectionKind.UNREADABLE, "hl7v2")
    unsupported = hl7v2_structure.acceptance(msg)
    if unsupported:
        return Rejected(Report.of(findings + unsupported), RejectionKind.UNSUPPORTED, "hl7v2")
    findings = findings + hl7v2_structure.validate(msg) + one_patient(msg)
    carried, found = transport.read(msg)
    findings += found
    if carried.documents:
        return _carried_documents(msg, carried, findings, limits, validator)
    if msg.message_type[0] == "ORU":
        return _converted(raw, sender, msg, carried, findings, limits, validator, lab)
    findings.append(
        error(
            "hl7.obx.document-missing",
            "the message carries no document: no OBX of type ED with ^TEXT^XML^Base64^<CDA>",
            location="OBX",
            layer=LAYER,
            hl7_code=101,
        )
    )
    return Rejected(Report.of(findings), RejectionKind.INVALID, "hl7v2")


def one_patient(msg: Message) -> list[Finding]:
    """An error at the second PID, if any: one message, one patient."""
    if len(msg.all("PID")) < 2:
        return []
    return [
        error(
            "hl7.pid.one-patient",
            "the message holds results for more than one patient (a second PID): the gateway "
            "files one patient per message, so none of it is filed",
            location="PID[2]",
            layer=LAYER,
            hl7_code=100,
            fix="send one message per patient",
        )
    ]


def _carried_documents(
    msg: Message,
    carried: Transport,
    findings: list[Finding],
    limits: CdaLimits,
    validator: CdaValidator,
) -> Document | Rejected:
    pid_ins, pid_oid, _ = hl7v2_structure.patient_ins(msg)
    documents: list[Document] = []
    for obx in carried.documents:
        findings += _status_findings(obx, msg)
        if obx.data is None:
            continue  # transport.read already named the OBX
        document, _cda = cda_intake.read(obx.data, limits, validator)
        if isinstance(document, Rejected):
            findings.append(_obx_refusal(obx, document))
            findings += document.report.findings
            continue
        findings += document.warnings
        findings += _consistency(obx, document.fields, pid_ins, pid_oid)
        documents.append(_completed(document, obx, carried, msg))
    report = Report.of(findings)
    if not report.valid or not documents:
        return Rejected(report, RejectionKind.INVALID, "hl7v2")
    primary, *others = documents
    return Document(
        payload=primary.payload,
        content_type=primary.content_type,
        source_kind="hl7v2",
        fields=primary.fields,
        warnings=report.warnings,
        related=tuple(others),
    )


def _status_findings(obx: DocumentObx, msg: Message) -> list[Finding]:
    if obx.status in transport.ACTIONS:
        return _trigger_findings(obx, msg)
    return [
        error(
            "hl7.obx.status",
            f"OBX-11 of a document OBX must be F (initial), C (replacement) or D (deletion), "
            f"not {obx.status!r}",
            location=f"OBX[{obx.index}]-11",
            layer=LAYER,
            hl7_code=103,
        )
    ]


def _trigger_findings(obx: DocumentObx, msg: Message) -> list[Finding]:
    """An MDM's trigger event and its document OBX-11 must ask for the same action.

    MDM^T02 files a new document (F), T10 replaces one (C), T04 deletes one (D). When they
    disagree nothing says which one the sender meant (a T04 with F would file the document it
    asks to delete), so the message is refused. An ORU^R01 has one trigger for all three:
    OBX-11 alone decides."""
    code, trigger, _ = msg.message_type
    expected = transport.MDM_STATUS.get(trigger) if code == "MDM" else None
    if expected is None or obx.status == expected:
        return []
    wanted = transport.ACTIONS[obx.status]
    status_trigger = next(t for t, s in transport.MDM_STATUS.items() if s == obx.status)
    return [
        error(
            "hl7.obx.status-trigger",
            f"MSH-9 is MDM^{trigger} ({transport.ACTIONS[expected]}) but OBX[{obx.index}]-11 "
            f"is {obx.status} ({wanted}): the message asks for two different actions",
            location=f"OBX[{obx.index}]-11",
            layer=LAYER,
            hl7_code=103,
            fix=f"for a {transport.ACTIONS[expected]} send OBX-11 {expected} with "
            f"MDM^{trigger}; for a {wanted} send MDM^{status_trigger} with OBX-11 {obx.status}",
        )
    ]


def _obx_refusal(obx: DocumentObx, rejected: Rejected) -> Finding:
    unreadable = any(f.layer == "xml" for f in rejected.report.errors)
    what = (
        "does not hold a CDA document (it must be ^TEXT^XML^Base64^<ClinicalDocument>)"
        if unreadable
        else "holds a CDA document that fails validation"
    )
    return error(
        "hl7.obx.not-cda" if unreadable else "hl7.obx.cda-invalid",
        f"OBX[{obx.index}]-5.5 {what}; the CDA findings follow",
        location=obx.location,
        layer=LAYER,
        hl7_code=102,
    )


def _consistency(
    obx: DocumentObx, fields: dict[str, Any], pid_ins: str | None, pid_oid: str | None
) -> list[Finding]:
    findings: list[Finding] = []
    replaces = fields.get("replaces")
    if obx.status == "C" and not replaces:
        # A later version of a set (versionNumber > 1) still says "replacement" unambiguously,
        # as in the published ORU example whose level-3 CDA lacks its relatedDocument.
        later = (fields.get("version") or 1) > 1
        findings.append(
            (warning if later else error)(
                "hl7.obx.replacement",
                "OBX-11 is C (replacement) but the CDA has no relatedDocument typeCode=RPLC "
                "naming the version it replaces"
                + ("; replacing within its setId" if later else ""),
                location=f"OBX[{obx.index}]-11",
                layer=LAYER,
                hl7_code=103,
            )
        )
    if obx.status == "F" and replaces:
        findings.append(
            error(
                "hl7.obx.replacement",
                "OBX-11 is F (initial) but the CDA replaces another document "
                "(relatedDocument RPLC): send OBX-11 C",
                location=f"OBX[{obx.index}]-11",
                layer=LAYER,
                hl7_code=103,
            )
        )
    return findings + _same_patient(obx, fields, pid_ins, pid_oid)


def _same_patient(
    obx: DocumentObx, fields: dict[str, Any], pid_ins: str | None, pid_oid: str | None
) -> list[Finding]:
    """PID-3 and the CDA's recordTarget must name the same INS: same number, same OID.

    The same digits under the test OID (1.2.250.1.213.1.4.10) and under the INS-NIR OID
    (1.2.250.1.213.1.4.8) are two identifiers: a test identity must never be filed as a real
    patient's, nor the other way round."""
    patient = fields.get("patient")
    cda_ins = patient.ins if patient is not None else None
    cda_oid = patient.ins_system if patient is not None else None
    if not (pid_ins and cda_ins):
        return []
    if pid_ins != cda_ins:
        problem = f"the INS in PID-3 is not the INS of the CDA carried in OBX[{obx.index}]"
    elif pid_oid and cda_oid and pid_oid != cda_oid:
        problem = (
            f"the INS in PID-3 is under OID {pid_oid} but the CDA carried in OBX[{obx.index}] "
            f"names it under {cda_oid}"
        )
    else:
        return []
    return [
        error(
            "hl7.pid.cda-patient",
            f"{problem} (recordTarget patientRole/id): the message and its document name "
            "different patients",
            location="PID-3",
            layer=LAYER,
            hl7_code=103,
            fix="send the same INS, number and assigning authority OID, in PID-3 and in the "
            "CDA recordTarget",
        )
    ]


def _completed(document: Document, obx: DocumentObx, carried: Transport, msg: Message) -> Document:
    """The CDA's fields, completed by the message: action, flags, masking, recipients.

    A deletion targets the document it carries: the sender sends the version to delete (the
    latest), whose relatedDocument RPLC names the version before it. Kept, that ``replaces``
    would point the withdrawal at the previous, already superseded version and leave the
    current one filed, so a deletion's envelope replaces nothing."""
    fields = dict(document.fields)
    fields["action"] = obx.action if obx.status in transport.ACTIONS else fields.get("action")
    if fields["action"] == "delete":
        fields["replaces"] = None
    fields["flags"] = {**fields.get("flags", {}), **carried.flags}
    codes = tuple(fields.get("confidentiality", ()))
    fields["confidentiality"] = codes + tuple(
        c for c in carried.confidentiality() if c not in codes
    )
    fields["metadata"] = _metadata(fields, carried, msg)
    return Document(
        payload=document.payload,
        content_type=document.content_type,
        source_kind="hl7v2",
        fields=fields,
        warnings=document.warnings,
    )


def _metadata(fields: dict[str, Any], carried: Transport, msg: Message, **extra: str) -> dict:
    code, trigger, _ = msg.message_type
    return {
        **fields.get("metadata", {}),
        **carried.metadata,
        "hl7_message_type": f"{code}^{trigger}",
        "hl7_version": msg.version,
        "hl7_sending_facility": msg.value("MSH-4.1"),  # checked by sender authorisation
        **extra,
    }


def _converted(
    raw: bytes,
    sender: str,
    msg: Message,
    carried: Transport,
    findings: list[Finding],
    limits: CdaLimits,
    validator: CdaValidator,
    lab: crbio.Laboratory | None,
) -> Document | Rejected:
    """A raw ORU^R01 → CR-BIO CDA, validated like any CDA; the message travels beside it."""
    if not Report.of(findings).valid:
        return Rejected(Report.of(findings), RejectionKind.INVALID, "hl7v2")
    cda_bytes, conversion = crbio.convert(msg, sender, lab=lab)  # the report's own id
    findings += conversion
    if not Report.of(findings).valid:
        return Rejected(Report.of(findings), RejectionKind.INVALID, "hl7v2")
    document, _ = cda_intake.read(cda_bytes, limits, validator)
    if isinstance(document, Rejected):
        return Rejected(
            Report.of(findings + list(document.report.findings)), RejectionKind.INVALID, "hl7v2"
        )
    report = Report.of(findings + list(document.warnings))
    fields = dict(document.fields)
    fields["flags"] = dict(carried.flags)
    fields["metadata"] = _metadata(fields, carried, msg, converted_from=CONTENT_TYPE)
    return Document(
        payload=document.payload,
        content_type=document.content_type,
        source_kind="hl7v2",
        fields=fields,
        warnings=report.warnings,
        attachments=(Attachment("source-message", CONTENT_TYPE, raw),),
    )
