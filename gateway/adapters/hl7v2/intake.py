"""HL7v2 intake: parse → accept type/version → validate → the document it carries. Pure.

A message that carries a CDA document (OBX value type ED, ``^TEXT^XML^Base64^…``) yields that
document, judged by the CDA intake like any CDA. A message without one yields the HL7v2 message
itself, identified by sender and MSH-10 so that a resend is recognised.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from gateway.adapters.cda import intake as cda_intake
from gateway.adapters.cda.parser import CdaLimits
from gateway.adapters.hl7v2.parser import Message, parse
from gateway.document import Document
from gateway.envelope import Patient
from gateway.findings import Finding, Report, error
from gateway.outcome import Rejected, RejectionKind
from gateway.validators import hl7v2_structure
from gateway.validators.cda import CdaValidator

CONTENT_TYPE = "application/hl7-v2+er7"
_ID_NAMESPACE = uuid.UUID("6f0c5a7e-3c1b-4b9e-9d4e-5a1f2c3b4d5e")


def message_document_id(sender: str, msg: Message) -> str:
    """A stable OID (2.25 arc) for a message: same sender, application and MSH-10 → same id."""
    key = "|".join([sender, msg.msh.field(3), msg.msh.field(4), msg.control_id])
    return f"2.25.{uuid.uuid5(_ID_NAMESPACE, key).int}"


def read(
    raw: bytes, sender: str, limits: CdaLimits, validator: CdaValidator
) -> Document | Rejected:
    msg, findings = parse(raw)
    if msg is None:
        return Rejected(Report.of(findings), RejectionKind.UNREADABLE, "hl7v2")
    unsupported = hl7v2_structure.acceptance(msg)
    if unsupported:
        return Rejected(Report.of(findings + unsupported), RejectionKind.UNSUPPORTED, "hl7v2")
    findings = findings + hl7v2_structure.validate(msg)
    embedded, located = _embedded_cda(msg)
    findings += located
    if embedded is not None:
        carried, _doc = cda_intake.read(embedded, limits, validator)
        if isinstance(carried, Rejected):
            return Rejected(
                Report.of(findings + list(carried.report.findings)), RejectionKind.INVALID, "hl7v2"
            )
        findings += carried.warnings
        report = Report.of(findings)
        if not report.valid:
            return Rejected(report, RejectionKind.INVALID, "hl7v2")
        return Document(
            payload=carried.payload,
            content_type=carried.content_type,
            source_kind="hl7v2",
            fields=carried.fields,
            warnings=report.warnings,
        )
    report = Report.of(findings)
    if not report.valid:
        return Rejected(report, RejectionKind.INVALID, "hl7v2")
    ins, oid, _ = hl7v2_structure.patient_ins(msg)
    code, trigger, _ = msg.message_type
    return Document(
        payload=raw,
        content_type=CONTENT_TYPE,
        source_kind="hl7v2",
        fields={
            "document_id": message_document_id(sender, msg),
            "patient": Patient(ins=ins, ins_system=oid),
            "metadata": {"message_type": f"{code}^{trigger}", "hl7_version": msg.version},
        },
        warnings=report.warnings,
        signable=False,
    )


def _embedded_cda(msg: Message) -> tuple[bytes | None, list[Finding]]:
    """The first base64 XML document in an ED OBX, with findings when it cannot be decoded."""
    for i, obx in enumerate(msg.all("OBX"), start=1):
        if obx.field(2) != "ED":
            continue
        parts = msg.components(obx.field(5))
        if len(parts) < 5 or parts[2].upper() != "XML":
            continue
        try:
            return base64.b64decode(parts[4], validate=True), []
        except (binascii.Error, ValueError):
            return None, [
                error(
                    "hl7.obx.base64",
                    "OBX-5.5 is not valid base64",
                    location=f"OBX[{i}]-5.5",
                    layer="hl7v2",
                    hl7_code=102,
                )
            ]
    return None, []
