"""Raw lab results (IHE LAB-3 ORU^R01) → a CI-SIS CR-BIO CDA (level 3). Pure and deterministic.

Header from MSH/PID/PV1/ORC/OBR, one section per order (OBR) with a narrative table, one lab
observation per OBX (LOINC code, UCUM unit, interpretation, reference range).

Deterministic on purpose: a resend of the same message (lost ACK) yields the same bytes, so
the record store files it once. Versions without state: all reports of one order share a
setId (sender + filler order number), and versionNumber counts the seconds from specimen
collection (OBR-7) to the report (OBR-22, else MSH-7), plus one: preliminary then final
results of an order become increasing versions of one document.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from lxml import etree

from gateway.adapters.hl7v2.parser import Message, Segment
from gateway.findings import Finding, error, warning

LAYER = "crbio"
V3 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
LAB = "urn:oid:1.3.6.1.4.1.19376.1.3.2"
LOINC = "2.16.840.1.113883.6.1"
RPPS = "1.2.250.1.71.4.2.1"
STRUCTURE_ID = "1.2.250.1.71.4.2.2"
INTERPRETATION = "2.16.840.1.113883.5.83"
TEMPLATES = (
    "2.16.840.1.113883.2.8.2.1",  # HL7 France
    "1.2.250.1.213.1.1.1.1",  # CI-SIS
    "1.3.6.1.4.1.19376.1.3.3",  # IHE PaLM XD-LAB
    "1.2.250.1.213.1.1.1.55",  # CR-BIO
)
SECTION_TEMPLATE = "1.3.6.1.4.1.19376.1.3.3.2.1"  # FR-CR-BIO-Chapitre
ENTRY_TEMPLATE = "1.3.6.1.4.1.19376.1.3.1"  # laboratory report data processing entry
OBSERVATION_TEMPLATE = "1.3.6.1.4.1.19376.1.3.1.6"  # laboratory observation
LOCAL_ZONE = ZoneInfo("Europe/Paris")  # HL7 times without an offset are French local time
_NS = uuid.UUID("0b7d7a52-61e8-4a36-8c4c-4d5b0e7a2f10")
_INTERPRETATIONS = frozenset({"N", "L", "H", "LL", "HH", "A", "AA", "<", ">", "S", "R", "I"})


def _oid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(_NS, '|'.join(parts)).int}"


def ts(value: str) -> str:
    """HL7 TS → CDA TS; date-times without an offset get the French local offset."""
    value = value.strip()
    if len(value) <= 8 or "+" in value or "-" in value[8:]:
        return value
    digits = value.split(".")[0]
    try:
        moment = datetime.strptime(digits.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return value
    offset = moment.replace(tzinfo=LOCAL_ZONE).strftime("%z")
    return digits + offset


def _seconds(value: str) -> datetime | None:
    try:
        return datetime.strptime(value[:14].ljust(14, "0"), "%Y%m%d%H%M%S")
    except ValueError:
        return None


def version_number(collected: str, reported: str) -> int:
    start, end = _seconds(collected), _seconds(reported)
    if start is None or end is None or end < start:
        return 1
    return int((end - start).total_seconds()) + 1


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str):
    node = etree.SubElement(parent, f"{{{V3}}}{tag}", {k: v for k, v in attrs.items() if v})
    if text:
        node.text = text
    return node


def convert(msg: Message, sender: str, document_id: str) -> tuple[bytes, list[Finding]]:
    """The CR-BIO CDA for ``msg`` and the findings of the conversion (errors: no CDA)."""
    findings: list[Finding] = []
    obrs = msg.all("OBR")
    obr = obrs[0] if obrs else Segment("OBR", ["OBR"])
    pid = msg.first("PID") or Segment("PID", ["PID"])
    reported = msg.value("OBR-22", obr) or msg.value("MSH-7.1")
    collected = msg.value("OBR-7", obr)
    order = msg.value("OBR-3.1", obr) or msg.value("ORC-3.1") or msg.value("OBR-2.1", obr)
    if not order:
        findings.append(
            error(
                "crbio.order-number",
                "no filler order number (OBR-3, ORC-3) nor placer order number (OBR-2): "
                "the report's versions cannot be tied together",
                location="OBR-3",
                layer=LAYER,
                hl7_code=101,
            )
        )

    root = etree.Element(f"{{{V3}}}ClinicalDocument", nsmap={None: V3, "lab": LAB, "xsi": XSI})
    _el(root, "realmCode", code="FR")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in TEMPLATES:
        _el(root, "templateId", root=template)
    _el(root, "id", root=document_id)
    _el(root, "code", code="11502-2", codeSystem=LOINC, codeSystemName="LOINC",
        displayName="CR d'examens biologiques")  # fmt: skip
    _el(root, "title", "Compte rendu d'examens biologiques")
    _el(root, "effectiveTime", value=ts(reported))
    _el(root, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25")
    _el(root, "languageCode", code="fr-FR")
    _el(root, "setId", root=_oid(sender, msg.value("MSH-3.1"), msg.value("MSH-4.1"), order))
    _el(root, "versionNumber", value=str(version_number(collected, reported)))
    _record_target(root, msg, pid)
    person = _result_person(msg, obr)
    _author(root, msg, obr, person, reported)
    _custodian(root, msg)
    if person is not None:
        legal = _el(root, "legalAuthenticator")
        _el(legal, "time", value=ts(reported))
        _el(legal, "signatureCode", code="S")
        _assigned(legal, "assignedEntity", person)
    service = _el(_el(root, "documentationOf"), "serviceEvent")
    span = _el(service, "effectiveTime")
    _el(span, "low", value=ts(collected or reported))
    _el(span, "high", value=ts(reported))
    encounter = _el(_el(root, "componentOf"), "encompassingEncounter")
    _el(encounter, "effectiveTime", value=ts(collected or reported))
    facility = _el(_el(encounter, "location"), "healthCareFacility")
    _el(facility, "code", code="SA29", codeSystem="1.2.250.1.71.4.2.4",
        displayName="Laboratoire de biologie médicale")  # fmt: skip

    body = _el(_el(root, "component"), "structuredBody")
    groups = _order_groups(msg)
    if not any(obxs for _obr, obxs in groups):
        findings.append(
            error(
                "crbio.no-results",
                "the ORU^R01 carries no OBX result to report",
                location="OBX",
                layer=LAYER,
                hl7_code=100,
            )
        )
    for obr_seg, obxs in groups:
        findings += _section(body, msg, obr_seg, obxs)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return xml, findings


def _order_groups(msg: Message) -> list[tuple[Segment, list[tuple[int, Segment]]]]:
    """OBR with its OBX segments (OBX numbered in message order, 1-based)."""
    groups: list[tuple[Segment, list[tuple[int, Segment]]]] = []
    n = 0
    for seg in msg.segments:
        if seg.name == "OBR":
            groups.append((seg, []))
        elif seg.name == "OBX":
            n += 1
            if groups:
                groups[-1][1].append((n, seg))
    return groups


def _record_target(root, msg: Message, pid: Segment) -> None:
    role = _el(_el(root, "recordTarget"), "patientRole")
    for rep in msg.repetitions(pid.field(3)):
        comps = msg.components(rep) + [""] * 5
        oid = comps[3].split(msg.delimiters.subcomponent)[1:2]
        if comps[0] and oid and oid[0]:
            _el(role, "id", root=oid[0], extension=comps[0])
    patient = _el(role, "patient", classCode="PSN")
    name = _el(patient, "name")
    family, given, more = (msg.value(f"PID-5.{i}", pid) for i in (1, 2, 3))
    _el(name, "family", family, qualifier="BR")
    _el(name, "given", " ".join(p for p in (given, more) if p))
    _el(name, "given", given, qualifier="BR")
    gender = msg.value("PID-8", pid) or "U"
    _el(patient, "administrativeGenderCode", code=gender if gender in "MFU" else "U",
        codeSystem="2.16.840.1.113883.5.1")  # fmt: skip
    _el(patient, "birthTime", value=msg.value("PID-7.1", pid))
    for rep in msg.repetitions(pid.field(11)):
        comps = msg.components(rep) + [""] * 9
        if comps[6] == "BDL" and comps[8]:  # birth address: COG code of the birthplace
            addr = _el(_el(_el(patient, "birthplace"), "place"), "addr")
            _el(addr, "county", comps[8])
            break


def _result_person(msg: Message, obr: Segment) -> list[str] | None:
    """The biologist (OBR-32 principal result interpreter) as XCN components, if identified."""
    raw = obr.field(32)
    if raw:
        comps = msg.components(raw)
        first = comps[0].split(msg.delimiters.subcomponent)
        if first[0]:
            return [*first, "", ""][:3]
    return None


def _assigned(parent, tag: str, person: list[str]) -> None:
    assigned = _el(parent, tag)
    _el(assigned, "id", root=RPPS, extension=person[0])
    if person[1] or person[2]:
        name = _el(_el(assigned, "assignedPerson"), "name")
        _el(name, "family", person[1])
        _el(name, "given", person[2])


def _organisation(parent, tag: str, msg: Message) -> None:
    org = _el(parent, tag)
    ident = msg.value("MSH-4.2") or msg.value("MSH-4.1")
    _el(org, "id", root=STRUCTURE_ID if msg.value("MSH-4.2") else _oid("facility"),
        extension=ident)  # fmt: skip
    _el(org, "name", msg.value("MSH-4.1"))


def _author(root, msg: Message, obr: Segment, person: list[str] | None, reported: str) -> None:
    author = _el(root, "author")
    _el(author, "time", value=ts(reported))
    if person is not None:
        assigned = _el(author, "assignedAuthor")
        _el(assigned, "id", root=RPPS, extension=person[0])
        name = _el(_el(assigned, "assignedPerson"), "name")
        _el(name, "family", person[1])
        _el(name, "given", person[2])
    else:  # the laboratory information system that produced the results
        assigned = _el(author, "assignedAuthor")
        _el(assigned, "id", root=_oid("application", msg.value("MSH-3.1"), msg.value("MSH-4.1")))
        device = _el(assigned, "assignedAuthoringDevice")
        _el(device, "manufacturerModelName", msg.value("MSH-3.1"))
        _el(device, "softwareName", msg.value("MSH-3.1"))
    _organisation(assigned, "representedOrganization", msg)


def _custodian(root, msg: Message) -> None:
    assigned = _el(_el(root, "custodian"), "assignedCustodian")
    _organisation(assigned, "representedCustodianOrganization", msg)


def _section(body, msg: Message, obr: Segment, obxs: list[tuple[int, Segment]]) -> list[Finding]:
    findings: list[Finding] = []
    section = _el(_el(body, "component"), "section")
    _el(section, "templateId", root=SECTION_TEMPLATE)
    code, system, display = (msg.value(f"OBR-4.{i}", obr) for i in (1, 3, 2))
    if system == "LN" and code:
        _el(section, "code", code=code, codeSystem=LOINC, displayName=display)
    else:
        _el(section, "code", code="26436-6", codeSystem=LOINC, displayName="Laboratory studies")
    _el(section, "title", display or "Résultats")
    table = _el(_el(section, "text"), "table")
    head = _el(_el(table, "thead"), "tr")
    for label in ("Analyse", "Résultat", "Unité", "Références", "Interprétation", "Statut"):
        _el(head, "th", label)
    tbody = _el(table, "tbody")
    entry = _el(section, "entry", typeCode="DRIV")
    act = _el(entry, "act", classCode="ACT", moodCode="EVN")
    _el(act, "templateId", root=ENTRY_TEMPLATE)
    _el(act, "code", code=code if system == "LN" and code else "26436-6", codeSystem=LOINC)
    _el(act, "statusCode", code="completed")
    for n, obx in obxs:
        findings += _observation(act, tbody, msg, obx, n)
    return findings


def _observation(act, tbody, msg: Message, obx: Segment, n: int) -> list[Finding]:
    findings: list[Finding] = []
    code, display, system = (msg.value(f"OBX-3.{i}", obx) for i in (1, 2, 3))
    value_type = obx.field(2)
    value = msg.value("OBX-5", obx)
    unit, unit_system = msg.value("OBX-6.1", obx), msg.value("OBX-6.3", obx)
    ref_range, flag, status = (msg.value(f"OBX-{i}", obx) for i in (7, 8, 11))
    if system != "LN" or not code:
        findings.append(
            error(
                "crbio.loinc",
                "a CR-BIO observation needs a LOINC code: OBX-3 must be <code>^<text>^LN",
                location=f"OBX[{n}]-3",
                layer=LAYER,
                hl7_code=103,
            )
        )
    if value_type == "NM" and unit and unit_system not in ("UCUM", ""):
        findings.append(
            warning(
                "crbio.ucum",
                f"OBX-6 unit system is {unit_system!r}; the unit is copied as UCUM",
                location=f"OBX[{n}]-6.3",
                layer=LAYER,
                hl7_code=103,
            )
        )
    row = _el(tbody, "tr", ID=f"obs-{n}")
    for cell in (display or code, value, unit, ref_range, flag, status):
        _el(row, "td", cell)

    observation = _el(_el(act, "entryRelationship", typeCode="COMP"), "observation",
                      classCode="OBS", moodCode="EVN")  # fmt: skip
    _el(observation, "templateId", root=OBSERVATION_TEMPLATE)
    _el(observation, "code", code=code, codeSystem=LOINC, displayName=display)
    _el(_el(observation, "text"), "reference", value=f"#obs-{n}")
    _el(observation, "statusCode", code="active" if status == "P" else "completed")
    when = msg.value("OBX-14.1", obx)
    if when:
        _el(observation, "effectiveTime", value=ts(when))
    findings += _value(observation, value_type, value, unit or "1", msg, obx, n)
    if flag in _INTERPRETATIONS:
        _el(observation, "interpretationCode", code=flag, codeSystem=INTERPRETATION)
    if ref_range:
        _reference_range(observation, ref_range, unit or "1", value_type)
    return findings


def _value(observation, value_type, value, unit, msg, obx, n) -> list[Finding]:
    tag = f"{{{V3}}}value"
    xsi_type = f"{{{XSI}}}type"
    if value_type == "NM":
        try:
            float(value)
        except ValueError:
            return [
                error(
                    "crbio.numeric",
                    "OBX-2 is NM but OBX-5 is not a number",
                    location=f"OBX[{n}]-5",
                    layer=LAYER,
                    hl7_code=102,
                )
            ]
        etree.SubElement(observation, tag, {xsi_type: "PQ", "value": value, "unit": unit})
    elif value_type in ("CE", "CWE"):
        comps = [msg.value(f"OBX-5.{i}", obx) for i in (1, 2, 3)]
        attrs = {xsi_type: "CD", "code": comps[0], "displayName": comps[1]}
        if comps[2] == "LN":
            attrs["codeSystem"] = LOINC
        etree.SubElement(observation, tag, {k: v for k, v in attrs.items() if v})
    elif value:
        etree.SubElement(observation, tag, {xsi_type: "ST"}).text = value
    return []


def _reference_range(observation, text: str, unit: str, value_type: str) -> None:
    range_ = _el(_el(observation, "referenceRange"), "observationRange")
    low, sep, high = text.partition("-")
    try:
        if value_type != "NM" or not sep:
            raise ValueError
        float(low)
        float(high)
    except ValueError:
        _el(range_, "text", text)
        return
    ivl = etree.SubElement(range_, f"{{{V3}}}value", {f"{{{XSI}}}type": "IVL_PQ"})
    _el(ivl, "low", value=low.strip(), unit=unit)
    _el(ivl, "high", value=high.strip(), unit=unit)
