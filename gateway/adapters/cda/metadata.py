"""CDA header → envelope fields (XDS names).

Pure: reads the parsed ClinicalDocument and returns a dict of Envelope keyword arguments.
Absent elements give absent fields; judging them is the validators' job, not this module's.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from gateway.adapters.cda.parser import CdaDocument
from gateway.adapters.cda.xpath import PRACTICE_SETTING, xp
from gateway.envelope import Code, Party, Patient
from gateway.validators import cda_codes
from gateway.validators.ins import INS_OIDS

_ID = xp("h:id")
_CODE = xp("h:code")
_TITLE = xp("string(h:title)")
_EFFECTIVE = xp("h:effectiveTime/@value")
_CONFIDENTIALITY = xp("h:confidentialityCode")
_LANGUAGE = xp("h:languageCode/@code")
_SET_ID = xp("h:setId")
_VERSION = xp("h:versionNumber/@value")
_RPLC = xp("h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id")
_PATIENT_ROLE = xp("h:recordTarget/h:patientRole")
_AUTHORS = xp("h:author/h:assignedAuthor")
_CUSTODIAN_ORG = xp("h:custodian/h:assignedCustodian/h:representedCustodianOrganization")
_LEGAL = xp("h:legalAuthenticator/h:assignedEntity")
_SERVICE_TIME = xp("h:documentationOf/h:serviceEvent/h:effectiveTime")
_FACILITY = xp("h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility")
_CONFIDENTIALITY_TRANSLATIONS = xp("h:confidentialityCode/h:translation")
_NON_XML_BODY = xp("h:component/h:nonXMLBody")
_TEMPLATE_IDS = xp("h:templateId/@root")

CONTENT_TYPE = "application/hl7-cda+xml"

LOINC = "2.16.840.1.113883.6.1"
# XDS formatCodes of the IHE content profiles the CI-SIS builds on (IHE ITI TF-3, LAB TF-3).
IHE_FORMAT_SYSTEM = "1.3.6.1.4.1.19376.1.2.3"
XD_LAB = Code("urn:ihe:lab:xd-lab:2008", IHE_FORMAT_SYSTEM, "CR-BIO (IHE XD-LAB)")
XDS_SD_PDF = Code("urn:ihe:iti:xds-sd:pdf:2008", IHE_FORMAT_SYSTEM, "PDF document (IHE XDS-SD)")
_IHE_LAB_REPORT = "1.3.6.1.4.1.19376.1.3.3"
_NON_XML_MEDIA = xp("h:component/h:nonXMLBody/h:text/@mediaType")

# Envelope fields whose national value set is known: a code outside it is kept but flagged.
_VALUE_SETS = {
    "type_code": cda_codes.TYPE_CODES,
    "facility_type_code": cda_codes.FACILITY_TYPE_CODES,
    "practice_setting_code": cda_codes.PRACTICE_SETTING_CODES,
    "confidentiality": cda_codes.CONFIDENTIALITY_CODES,
}


def instance_id(el: etree._Element | None) -> str | None:
    """An II as a single string: ``root^extension``, or ``root`` alone (XDS uniqueId form)."""
    if el is None:
        return None
    root, ext = el.get("root"), el.get("extension")
    if not root:
        return None
    return f"{root}^{ext}" if ext else root


def _first(nodes: list) -> Any:
    return nodes[0] if nodes else None


def _code(el: etree._Element | None) -> Code | None:
    """A coded element as a Code; a LOINC code named only by codeSystemName gets LOINC's OID."""
    if el is None or not el.get("code"):
        return None
    system = el.get("codeSystem", "")
    if not system and (el.get("codeSystemName") or "").upper() == "LOINC":
        system = LOINC
    return Code(el.get("code"), system, el.get("displayName"))


def _is_known(code: Code, value_set: dict[str, frozenset[str]]) -> bool:
    return code.code in value_set.get(code.system, ())


def local_codes(fields: dict[str, Any]) -> tuple[str, ...]:
    """Names of the envelope fields holding a code outside its national value set."""
    flagged = []
    for name, value_set in _VALUE_SETS.items():
        value = fields.get(name)
        codes = value if isinstance(value, tuple) else (value,) if value else ()
        if any(not _is_known(c, value_set) for c in codes):
            flagged.append(name)
    return tuple(flagged)


def _format_code(cd: etree._Element, template_ids: list[str]) -> Code | None:
    if _IHE_LAB_REPORT in template_ids:
        return XD_LAB
    if "application/pdf" in _NON_XML_MEDIA(cd):
        return XDS_SD_PDF
    return None


def _text(el: etree._Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path, namespaces={"h": "urn:hl7-org:v3"})
    if found is None:
        return None
    text = " ".join("".join(found.itertext()).split())
    return text or None


def _person_name(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    family = _text(el, "h:family")
    given = _text(el, "h:given")
    return " ".join(p for p in (given, family) if p) or None


def _organisation(org: etree._Element | None) -> Party | None:
    if org is None:
        return None
    ident = _first(_ID(org))
    return Party(
        id=ident.get("extension") if ident is not None else None,
        id_system=ident.get("root") if ident is not None else None,
        name=_text(org, "h:name"),
    )


def _assigned_party(assigned: etree._Element) -> Party:
    ident = _first(_ID(assigned))
    person = assigned.find("{urn:hl7-org:v3}assignedPerson")
    org = assigned.find("{urn:hl7-org:v3}representedOrganization")
    return Party(
        id=ident.get("extension") if ident is not None else None,
        id_system=ident.get("root") if ident is not None else None,
        name=_person_name(person.find("{urn:hl7-org:v3}name") if person is not None else None),
        role=_code(_first(_CODE(assigned))),
        organisation=_organisation(org),
    )


def _patient(role: etree._Element | None) -> Patient:
    if role is None:
        return Patient()
    ins = ins_system = None
    local: list[str] = []
    for ident in _ID(role):
        root, ext = ident.get("root"), ident.get("extension")
        if root in INS_OIDS and ext and ins is None:
            ins, ins_system = ext, root
        elif root and ext:
            local.append(f"{ext}^^^&{root}&ISO")
    person = role.find("{urn:hl7-org:v3}patient")
    name = person.find("{urn:hl7-org:v3}name") if person is not None else None
    gender = person.find("{urn:hl7-org:v3}administrativeGenderCode") if person is not None else None
    birth = person.find("{urn:hl7-org:v3}birthTime") if person is not None else None
    return Patient(
        ins=ins,
        ins_system=ins_system,
        family_name=_text(name, "h:family"),
        given_names=_text(name, "h:given"),
        birth_date=birth.get("value") if birth is not None else None,
        gender=gender.get("code") if gender is not None else None,
        local_ids=tuple(local),
    )


def extract(doc: CdaDocument) -> dict[str, Any]:
    """Envelope keyword arguments read from the CDA header."""
    cd = doc.root
    replaces = instance_id(_first(_RPLC(cd)))
    version = _first(_VERSION(cd))
    service = _first(_SERVICE_TIME(cd))
    facility = _first(_FACILITY(cd))
    facility_org = (
        facility.find("{urn:hl7-org:v3}serviceProviderOrganization")
        if facility is not None
        else None
    )
    template_ids = _TEMPLATE_IDS(cd)
    fields: dict[str, Any] = {
        "document_id": instance_id(_first(_ID(cd))),
        "set_id": instance_id(_first(_SET_ID(cd))),
        "version": int(version) if version and version.isdigit() else None,
        "replaces": replaces,
        "action": "replace" if replaces else "create",
        "patient": _patient(_first(_PATIENT_ROLE(cd))),
        "title": _TITLE(cd) or None,
        "type_code": _code(_first(_CODE(cd))),
        "confidentiality": tuple(
            c for c in map(_code, _CONFIDENTIALITY(cd) + _CONFIDENTIALITY_TRANSLATIONS(cd)) if c
        ),
        "language_code": _first(_LANGUAGE(cd)),
        "creation_time": _first(_EFFECTIVE(cd)),
        "authors": tuple(_assigned_party(a) for a in _AUTHORS(cd)),
        "custodian": _organisation(_first(_CUSTODIAN_ORG(cd))),
        "legal_authenticator": _assigned_party(_first(_LEGAL(cd))) if _LEGAL(cd) else None,
        "facility": _organisation(facility_org),
        "facility_type_code": _code(
            facility.find("{urn:hl7-org:v3}code") if facility is not None else None
        ),
        "practice_setting_code": _code(_first(PRACTICE_SETTING(cd))),
        "format_code": _format_code(cd, template_ids),
        "service_start": _time(service, "low"),
        "service_stop": _time(service, "high"),
        "content_type": CONTENT_TYPE,
        "metadata": {
            "template_ids": " ".join(template_ids),
            "level": "1" if _NON_XML_BODY(cd) else "3",
        },
    }
    fields["local_codes"] = local_codes(fields)
    return fields


def _time(el: etree._Element | None, bound: str) -> str | None:
    if el is None:
        return None
    node = el.find(f"{{urn:hl7-org:v3}}{bound}")
    return node.get("value") if node is not None else None
