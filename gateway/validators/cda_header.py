"""CDA header rules written here (built-in tier). The skeleton's set: identity of the document
and of the patient. The CDA issue deepens this into the full CI-SIS header.
"""

from __future__ import annotations

from gateway.adapters.cda.parser import CdaDocument
from gateway.adapters.cda.xpath import xp
from gateway.findings import Finding, error
from gateway.validators.ins import INS_OIDS, check_ins

LAYER = "cda-header"

_ID = xp("h:id")
_PATIENT_IDS = xp("h:recordTarget/h:patientRole/h:id")


def validate(doc: CdaDocument) -> list[Finding]:
    cd = doc.root
    findings: list[Finding] = []
    ids = _ID(cd)
    if not ids or not ids[0].get("root"):
        findings.append(
            error(
                "cda.header.id",
                "ClinicalDocument/id with a root is required: it is the document's unique id",
                location="/ClinicalDocument/id",
                layer=LAYER,
                hl7_code=101,
            )
        )
    ins_ids = [i for i in _PATIENT_IDS(cd) if i.get("root") in INS_OIDS]
    if not ins_ids:
        findings.append(
            error(
                "cda.header.ins",
                "recordTarget/patientRole carries no INS (id with an INS OID)",
                location="/ClinicalDocument/recordTarget/patientRole",
                layer=LAYER,
                fix="identify the patient with the INS from the INSi service",
                hl7_code=101,
            )
        )
    for ident in ins_ids:
        location = doc.tree.getpath(ident) if not doc.wrapped else ""
        findings += check_ins(ident.get("extension"), ident.get("root"), location, LAYER)
    return findings
