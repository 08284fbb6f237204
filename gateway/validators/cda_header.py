"""CI-SIS header rules ("structuration minimale"), written here: the built-in tier.

Each rule is a small function of the ClinicalDocument element returning findings. Rule ids are
stable (``cda.header.<item>``); docs/cda-validation.md lists each with the specification
paragraph it comes from. The national pack's StructurationMinimale schematron is the reference
these rules follow; the pack tier runs that schematron itself when configured.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

from lxml import etree

from gateway.adapters.cda.parser import CdaDocument
from gateway.adapters.cda.xpath import HL7, PRACTICE_SETTING, path_of, xp
from gateway.findings import Finding, Severity
from gateway.validators import cda_codes
from gateway.validators.ins import INS_OIDS, check_ins

LAYER = "cda-header"

LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
MASKING_SYSTEM = "1.2.250.1.213.1.1.4.13"
PROFESSIONAL_ID = "1.2.250.1.71.4.2.1"  # RPPS (8…), ADELI (0…), structure-internal ids
TYPE_ID = ("2.16.840.1.113883.1.3", "POCD_HD000040")
HEADER_TEMPLATE_IDS = {
    "2.16.840.1.113883.2.8.2.1": "HL7 France",
    "1.2.250.1.213.1.1.1.1": "CI-SIS",
}

# TS with at least minute precision and a mandatory UTC offset (CI-SIS: dates carry a timezone).
_TS_TZ = re.compile(r"^\d{12}(\d{2}(\.\d{1,4})?)?[+-]\d{4}$")
_TS_MINUTE = re.compile(r"^\d{12}(\d{2}(\.\d{1,4})?)?([+-]\d{4})?$")
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")
_LANGUAGE = "fr-FR"
_PROFESSIONAL_ID_SHAPES = {"8": re.compile(r"^8\d{11}$"), "0": re.compile(r"^0\d{8}[0-9A-Z]$")}

Rule = Callable[[etree._Element], Iterable[Finding]]


def finding(
    rule: str,
    message: str,
    at: etree._Element,
    child: str | None = None,
    *,
    severity: Severity = Severity.ERROR,
    fix: str | None = None,
    hl7_code: int = 101,
    layer: str = LAYER,
) -> Finding:
    """A finding located at ``at`` (or at its missing ``child``), with the source line."""
    location = path_of(at) + (f"/{child}" if child else "")
    return Finding(
        rule=rule,
        severity=severity,
        message=message,
        location=location,
        layer=layer,
        line=at.sourceline,
        fix=fix,
        hl7_code=hl7_code,
    )


def is_instance_id(root: str | None) -> bool:
    """An II root is an OID or a UUID (HL7 V3 data types, II.root)."""
    return bool(root) and bool(_OID.match(root) or _UUID.match(root))


def _child(el: etree._Element, name: str) -> etree._Element | None:
    return el.find(f"{{{HL7}}}{name}")


_REALM = xp("h:realmCode")
_TEMPLATE_ROOTS = xp("h:templateId/@root")
_CONFIDENTIALITY = xp("h:confidentialityCode")
_PATIENT_ROLES = xp("h:recordTarget/h:patientRole")
_AUTHORS = xp("h:author")
_RELATED = xp("h:relatedDocument")
_SERVICE_EVENTS = xp("h:documentationOf/h:serviceEvent")
_FACILITY_CODE = xp("h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code")


def realm_code(cd: etree._Element) -> Iterable[Finding]:
    if not any(r.get("code") == "FR" for r in _REALM(cd)):
        yield finding(
            "cda.header.realmCode",
            'realmCode code="FR" is required for documents of the French shared record',
            cd,
            "realmCode",
            fix='add <realmCode code="FR"/> as the first element of ClinicalDocument',
        )


def type_id(cd: etree._Element) -> Iterable[Finding]:
    tid = _child(cd, "typeId")
    if tid is None or (tid.get("root"), tid.get("extension")) != TYPE_ID:
        yield finding(
            "cda.header.typeId",
            f'typeId must be root="{TYPE_ID[0]}" extension="{TYPE_ID[1]}" (CDA R2)',
            tid if tid is not None else cd,
            None if tid is not None else "typeId",
        )


def template_ids(cd: etree._Element) -> Iterable[Finding]:
    roots = set(_TEMPLATE_ROOTS(cd))
    for root, name in HEADER_TEMPLATE_IDS.items():
        if root not in roots:
            yield finding(
                "cda.header.templateId",
                f"header templateId {root} ({name}) is required",
                cd,
                "templateId",
                fix=f'add <templateId root="{root}"/>',
            )


def document_id(cd: etree._Element) -> Iterable[Finding]:
    ident = _child(cd, "id")
    if ident is None or not ident.get("root"):
        yield finding(
            "cda.header.id",
            "ClinicalDocument/id with a root is required: it is the document's unique id",
            cd,
            "id",
        )
    elif not is_instance_id(ident.get("root")):
        yield finding(
            "cda.header.id",
            "ClinicalDocument/id/@root must be an OID or a UUID",
            ident,
            hl7_code=102,
        )


def document_code(cd: etree._Element) -> Iterable[Finding]:
    code = _child(cd, "code")
    if code is None or not code.get("code"):
        yield finding(
            "cda.header.code", "ClinicalDocument/code (document type) is required", cd, "code"
        )
        return
    system, value = code.get("codeSystem", ""), code.get("code")
    if value not in cda_codes.TYPE_CODES.get(system, ()):
        yield finding(
            "cda.header.code",
            f"document type {value!r} in code system {system!r} is not in the national "
            "type-code value set (JDV_J07_XdsTypeCode_CISIS)",
            code,
            hl7_code=103,
            fix="use the LOINC or national document type code of the document model",
        )


def title(cd: etree._Element) -> Iterable[Finding]:
    el = _child(cd, "title")
    if el is None or not "".join(el.itertext()).strip():
        yield finding("cda.header.title", "ClinicalDocument/title must not be empty", cd, "title")


def effective_time(cd: etree._Element) -> Iterable[Finding]:
    el = _child(cd, "effectiveTime")
    if el is None or not el.get("value"):
        yield finding(
            "cda.header.effectiveTime",
            "ClinicalDocument/effectiveTime (creation time) is required",
            cd,
            "effectiveTime",
        )
    elif not _TS_MINUTE.match(el.get("value")):
        yield finding(
            "cda.header.effectiveTime",
            "effectiveTime must be precise to the minute at least (YYYYMMDDHHMM[SS]±HHMM)",
            el,
            hl7_code=102,
        )
    elif not _TS_TZ.match(el.get("value")):
        # CI-SIS requires the offset; older published documents lack it: flagged, not rejected.
        yield finding(
            "cda.header.effectiveTime",
            "effectiveTime has no UTC offset (±HHMM): the creation time is ambiguous",
            el,
            severity=Severity.WARNING,
            hl7_code=102,
        )


def confidentiality_code(cd: etree._Element) -> Iterable[Finding]:
    codes = _CONFIDENTIALITY(cd)
    if not codes:
        yield finding(
            "cda.header.confidentialityCode",
            "confidentialityCode is required",
            cd,
            "confidentialityCode",
        )
        return
    for el in codes:
        pairs = [(el.get("codeSystem"), el.get("code"))]
        pairs += [
            (t.get("codeSystem"), t.get("code")) for t in el.iterchildren(f"{{{HL7}}}translation")
        ]
        if pairs[0][0] != CONFIDENTIALITY_SYSTEM:
            yield finding(
                "cda.header.confidentialityCode",
                f"confidentialityCode must be N, R or V in {CONFIDENTIALITY_SYSTEM}",
                el,
                hl7_code=103,
            )
            continue
        for system, value in pairs:
            if value not in cda_codes.CONFIDENTIALITY_CODES.get(system, ()):
                yield finding(
                    "cda.header.confidentialityCode",
                    f"confidentiality code {value!r} ({system}) is not in "
                    "JDV_J08_XdsConfidentialityCode_CISIS (N, R, V; MASQUE_PS, "
                    "INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX)",
                    el,
                    hl7_code=103,
                )


def language_code(cd: etree._Element) -> Iterable[Finding]:
    el = _child(cd, "languageCode")
    if el is None or el.get("code") != _LANGUAGE:
        yield finding(
            "cda.header.languageCode",
            f'languageCode code="{_LANGUAGE}" is required',
            el if el is not None else cd,
            None if el is not None else "languageCode",
        )


def set_id_and_version(cd: etree._Element) -> Iterable[Finding]:
    set_id, version = _child(cd, "setId"), _child(cd, "versionNumber")
    if set_id is None:
        # Required by the CI-SIS; documents of the first DMP generation omit it. Without it the
        # document cannot be versioned later: flagged, not rejected.
        yield finding(
            "cda.header.setId",
            "no setId: later versions of this document cannot be linked to it",
            cd,
            "setId",
            severity=Severity.WARNING,
        )
    elif not is_instance_id(set_id.get("root")):
        yield finding(
            "cda.header.setId",
            "setId needs an OID or UUID root: all versions of a document share it",
            set_id,
        )
    value = version.get("value", "") if version is not None else ""
    if not value.isdigit() or int(value) < 1:
        yield finding(
            "cda.header.versionNumber",
            "versionNumber with a positive integer value is required",
            version if version is not None else cd,
            None if version is not None else "versionNumber",
        )


def record_target(cd: etree._Element) -> Iterable[Finding]:
    roles = _PATIENT_ROLES(cd)
    if len(roles) != 1:
        yield finding(
            "cda.header.recordTarget",
            f"exactly one recordTarget/patientRole is required (found {len(roles)})",
            cd,
            "recordTarget",
        )
        return
    role = roles[0]
    ins_ids = [i for i in role.iterchildren(f"{{{HL7}}}id") if i.get("root") in INS_OIDS]
    if not ins_ids:
        yield finding(
            "cda.header.ins",
            "recordTarget/patientRole carries no INS (id with an INS OID)",
            role,
            "id",
            fix="identify the patient with the INS from the INSi service",
        )
        return
    for ident in ins_ids:
        for f in check_ins(ident.get("extension"), ident.get("root"), path_of(ident), LAYER):
            yield dataclasses.replace(f, line=ident.sourceline)
    yield from _qualified_identity(role)


def _qualified_identity(role: etree._Element) -> Iterable[Finding]:
    """With an INS, the identity traits of the INSi must be there (INS referential)."""
    patient = _child(role, "patient")
    if patient is None:
        yield finding("cda.header.ins-identity", "patientRole/patient is required", role, "patient")
        return
    name = _child(patient, "name")
    birth_family = name is not None and any(
        f.get("qualifier") == "BR" and (f.text or "").strip()
        for f in name.iterchildren(f"{{{HL7}}}family")
    )
    given = name is not None and any(
        (g.text or "").strip() for g in name.iterchildren(f"{{{HL7}}}given")
    )
    gender = _child(patient, "administrativeGenderCode")
    birth = _child(patient, "birthTime")
    missing = [
        label
        for label, ok in (
            ('birth name (family qualifier="BR")', birth_family),
            ("given name", given),
            ("administrativeGenderCode", gender is not None and gender.get("code")),
            ("birthTime", birth is not None and birth.get("value")),
        )
        if not ok
    ]
    if missing:
        yield finding(
            "cda.header.ins-identity",
            "a patient identified by INS needs the qualified identity traits: missing "
            + ", ".join(missing),
            patient,
            fix="copy the identity traits returned by the INSi service",
        )


def authors(cd: etree._Element) -> Iterable[Finding]:
    found = _AUTHORS(cd)
    if not found:
        yield finding("cda.header.author", "at least one author is required", cd, "author")
    for author in found:
        time = _child(author, "time")
        if time is None or not time.get("value"):
            yield finding("cda.header.author", "author/time is required", author, "time")
        assigned = _child(author, "assignedAuthor")
        if assigned is None:
            yield finding(
                "cda.header.author", "author/assignedAuthor is required", author, "assignedAuthor"
            )
            continue
        yield from _professional_id("cda.header.author-id", assigned, "author")


def _professional_id(rule: str, assigned: etree._Element, what: str) -> Iterable[Finding]:
    ident = _child(assigned, "id")
    if ident is None or not ident.get("root"):
        yield finding(
            rule, f"{what} needs an id (RPPS or ADELI national identifier)", assigned, "id"
        )
        return
    root, ext = ident.get("root"), ident.get("extension") or ""
    if root != PROFESSIONAL_ID:
        yield finding(
            rule,
            f"{what} id should be a national professional identifier ({PROFESSIONAL_ID})",
            ident,
            severity=Severity.WARNING,
            hl7_code=103,
        )
        return
    shape = _PROFESSIONAL_ID_SHAPES.get(ext[:1])
    if shape is not None and not shape.match(ext):
        kind = "RPPS (8 + 11 digits)" if ext.startswith("8") else "ADELI (0 + 9 characters)"
        yield finding(rule, f"{what} id is not a well-formed {kind}", ident, hl7_code=102)
    elif not ext:
        yield finding(rule, f"{what} id has no extension", ident, hl7_code=101)


def custodian(cd: etree._Element) -> Iterable[Finding]:
    org = cd.find(
        f"{{{HL7}}}custodian/{{{HL7}}}assignedCustodian/{{{HL7}}}representedCustodianOrganization"
    )
    if org is None:
        yield finding(
            "cda.header.custodian",
            "custodian/assignedCustodian/representedCustodianOrganization is required",
            cd,
            "custodian",
        )
    elif _child(org, "id") is None or not _child(org, "id").get("root"):
        yield finding("cda.header.custodian", "the custodian organisation needs an id", org, "id")


def legal_authenticator(cd: etree._Element) -> Iterable[Finding]:
    legal = _child(cd, "legalAuthenticator")
    if legal is None:
        # Required by the CI-SIS; reports converted from HL7v2 results without a responsible
        # biologist (OBR-32) have none. Flagged, not rejected: see docs/cda-validation.md.
        yield finding(
            "cda.header.legalAuthenticator",
            "no legalAuthenticator: nobody is named as legally responsible for the content",
            cd,
            "legalAuthenticator",
            severity=Severity.WARNING,
        )
        return
    time, signature = _child(legal, "time"), _child(legal, "signatureCode")
    if time is None or not time.get("value"):
        yield finding(
            "cda.header.legalAuthenticator", "legalAuthenticator/time is required", legal, "time"
        )
    if signature is None or signature.get("code") != "S":
        yield finding(
            "cda.header.legalAuthenticator",
            'legalAuthenticator/signatureCode code="S" is required',
            legal,
            "signatureCode",
        )
    assigned = _child(legal, "assignedEntity")
    if assigned is None:
        yield finding(
            "cda.header.legalAuthenticator",
            "legalAuthenticator/assignedEntity is required",
            legal,
            "assignedEntity",
        )
    else:
        yield from _professional_id("cda.header.legalAuthenticator", assigned, "legalAuthenticator")


def documentation_of(cd: etree._Element) -> Iterable[Finding]:
    if not _SERVICE_EVENTS(cd):
        yield finding(
            "cda.header.documentationOf",
            "at least one documentationOf/serviceEvent (the act documented) is required",
            cd,
            "documentationOf",
        )
    settings = PRACTICE_SETTING(cd)
    if not settings:
        yield finding(
            "cda.header.practiceSetting",
            "no practice setting: documentationOf/serviceEvent/performer/assignedEntity/"
            "representedOrganization/standardIndustryClassCode is expected",
            cd,
            "documentationOf",
            severity=Severity.WARNING,
        )
    for el in settings:
        yield from _known_code(
            el,
            cda_codes.PRACTICE_SETTING_CODES,
            "cda.header.practiceSetting",
            "practice setting",
            "JDV_J04_XdsPracticeSettingCode_CISIS",
        )


def related_document(cd: etree._Element) -> Iterable[Finding]:
    own = _child(cd, "id")
    for rel in _RELATED(cd):
        if rel.get("typeCode") != "RPLC":
            yield finding(
                "cda.header.relatedDocument",
                f"relatedDocument typeCode {rel.get('typeCode')!r}: only RPLC (replacement) is "
                "allowed",
                rel,
                hl7_code=103,
            )
        parent_id = rel.find(f"{{{HL7}}}parentDocument/{{{HL7}}}id")
        if parent_id is None or not is_instance_id(parent_id.get("root")):
            yield finding(
                "cda.header.relatedDocument",
                "relatedDocument/parentDocument/id must identify the replaced document",
                rel,
                "parentDocument",
            )
        elif own is not None and (parent_id.get("root"), parent_id.get("extension")) == (
            own.get("root"),
            own.get("extension"),
        ):
            yield finding(
                "cda.header.relatedDocument",
                "a document cannot replace itself: parentDocument/id equals ClinicalDocument/id",
                parent_id,
                hl7_code=102,
            )


def component_of(cd: etree._Element) -> Iterable[Finding]:
    encounter = cd.find(f"{{{HL7}}}componentOf/{{{HL7}}}encompassingEncounter")
    if encounter is None:
        yield finding(
            "cda.header.componentOf",
            "componentOf/encompassingEncounter is required",
            cd,
            "componentOf",
        )
        return
    if _child(encounter, "effectiveTime") is None:
        yield finding(
            "cda.header.componentOf",
            "encompassingEncounter/effectiveTime is required",
            encounter,
            "effectiveTime",
        )
    codes = _FACILITY_CODE(cd)
    if not codes or not codes[0].get("code"):
        yield finding(
            "cda.header.facilityType",
            "encompassingEncounter/location/healthCareFacility/code (facility type) is required",
            encounter,
            "location",
        )
        return
    yield from _known_code(
        codes[0],
        cda_codes.FACILITY_TYPE_CODES,
        "cda.header.facilityType",
        "facility type",
        "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS",
    )


def _known_code(
    el: etree._Element, value_set: dict[str, frozenset[str]], rule: str, what: str, jdv: str
) -> Iterable[Finding]:
    """A code outside the national value set is kept but flagged (warning, not rejection)."""
    system, value = el.get("codeSystem", ""), el.get("code")
    if value and value not in value_set.get(system, ()):
        yield finding(
            rule,
            f"{what} {value!r} ({system}) is not in {jdv}: kept as a local code",
            el,
            severity=Severity.WARNING,
            hl7_code=103,
        )


RULES: tuple[Rule, ...] = (
    realm_code,
    type_id,
    template_ids,
    document_id,
    document_code,
    title,
    effective_time,
    confidentiality_code,
    language_code,
    set_id_and_version,
    record_target,
    authors,
    custodian,
    legal_authenticator,
    documentation_of,
    related_document,
    component_of,
)


def validate(doc: CdaDocument) -> list[Finding]:
    return [f for rule in RULES for f in rule(doc.root)]
