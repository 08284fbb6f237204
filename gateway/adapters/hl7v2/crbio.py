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

import base64
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.adapters.hl7v2 import pdf_copy, xmlwriter
from gateway.adapters.hl7v2.parser import Message, Segment
from gateway.adapters.hl7v2.xmlwriter import Node, leaf, start, sub
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
CHAPTER_TEMPLATES = ("1.3.6.1.4.1.19376.1.3.3.2.1", "1.2.250.1.213.1.1.2.70")  # FR-CR-BIO-Chapitre
SUBCHAPTER_TEMPLATES = ("1.3.6.1.4.1.19376.1.3.3.2.2", "1.2.250.1.213.1.1.2.71")
ENTRY_TEMPLATES = ("1.3.6.1.4.1.19376.1.3.1", "1.2.250.1.213.1.1.3.21")  # FR-Resultats-examens
OBSERVATION_TEMPLATES = ("1.3.6.1.4.1.19376.1.3.1.6", "1.2.250.1.213.1.1.3.80")
PDF_SECTION_TEMPLATE = "1.2.250.1.213.1.1.2.243"  # FR-Document-PDF-copie
ATTACHED_TEMPLATE = "1.2.250.1.213.1.1.3.18"  # FR-Document-attache
ATTACHED_TYPE_TEMPLATES = (
    "1.3.6.1.4.1.19376.1.5.3.1.4.13",
    "1.2.250.1.213.1.1.3.48",
    "1.2.250.1.213.1.1.3.48.18",
)
PERFORMER_TEMPLATE = "1.3.6.1.4.1.19376.1.3.3.1.7"
PROFESSION = "1.2.250.1.213.1.1.4.5"  # TRE_G15 profession / TRE_R38 specialty
PRACTICE_SETTING = "1.2.250.1.213.1.1.4.9"
LOCAL_ZONE = ZoneInfo("Europe/Paris")  # HL7 times without an offset are French local time
_NS = uuid.UUID("0b7d7a52-61e8-4a36-8c4c-4d5b0e7a2f10")
_OBSERVATION_START = (
    '<entryRelationship typeCode="COMP"><observation classCode="OBS" moodCode="EVN">'
    + "".join(f'<templateId root="{t}"/>' for t in OBSERVATION_TEMPLATES)
)
_INTERPRETATIONS = frozenset({"N", "L", "H", "LL", "HH", "A", "AA", "<", ">", "S", "R", "I"})


def _oid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(_NS, '|'.join(parts)).int}"


@functools.lru_cache(maxsize=1024)  # a message repeats the same few times in every OBX
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


def _el(parent: Node, tag: str, text: str | None = None, **attrs: str) -> Node:
    """A child element in the CDA namespace; attributes with an empty value are left out."""
    return sub(parent, tag, _given(attrs), text or None)


def _leaf(parent: Node, tag: str, text: str | None = None, **attrs: str) -> None:
    """``_el`` for an element that gets no children: written at once, as its node would be
    (two thirds of a report's header; a node costs more to build and write than its text)."""
    parent.children.append(leaf(tag, _given(attrs), text or None))


def _fixed(parent: Node, tag: str, text: str | None = None, **attrs: str) -> None:
    """``_leaf`` for an element the same in every report (templates, codes, unknown
    contacts): written once per process."""
    parent.children.append(_fixed_leaf(tag, text, tuple(attrs.items())))


@functools.lru_cache(maxsize=256)
def _fixed_leaf(tag: str, text: str | None, items: tuple[tuple[str, str], ...]) -> str:
    return leaf(tag, _given(dict(items)), text or None)


@dataclass(frozen=True)
class Person:
    """A health professional named in the report (RPPS id; profession as a TRE_G15 code)."""

    id: str
    family: str = ""
    given: str = ""
    profession: str = ""  # e.g. "G15_10/SM03"; HL7v2 XCN does not carry it
    profession_name: str = ""


@dataclass(frozen=True)
class Laboratory:
    """Configured facts about the laboratory that HL7v2 lab results do not carry: its national
    structure id (FINESS/SIRET-based, root 1.2.250.1.71.4.2.2) and its director, named as the
    responsible biologist when no result interpreter is in the message."""

    structure_id: str = ""
    director: Person | None = None


def convert(
    msg: Message, sender: str, document_id: str, lab: Laboratory | None = None
) -> tuple[bytes, list[Finding]]:
    """The CR-BIO CDA for ``msg`` and the findings of the conversion (errors: no CDA)."""
    try:
        return _convert(msg, sender, document_id, lab or Laboratory())
    except xmlwriter.InvalidXmlText as exc:
        return b"", [_unrepresentable(exc)]


def _convert(
    msg: Message, sender: str, document_id: str, lab: Laboratory
) -> tuple[bytes, list[Finding]]:
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
    groups = _order_groups(msg)
    biologist = _responsible(msg, obr, groups) or lab.director
    if biologist is None:
        findings.append(
            warning(
                "crbio.biologist",
                "no result interpreter (OBR-32), responsible observer (OBX-16) nor configured "
                "laboratory director: the laboratory is named as legal authenticator",
                location="OBR-32",
                layer=LAYER,
            )
        )
    org = _org_id(msg, lab)
    when = ts(reported)

    root = Node("ClinicalDocument", {"xmlns": V3, "xmlns:lab": LAB, "xmlns:xsi": XSI})
    _fixed(root, "realmCode", code="FR")
    _fixed(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in TEMPLATES:
        _fixed(root, "templateId", root=template)
    _leaf(root, "id", root=document_id)
    _fixed(root, "code", code="11502-2", codeSystem=LOINC, codeSystemName="LOINC",
        displayName="CR d'examens biologiques")  # fmt: skip
    _fixed(root, "title", "Compte rendu d'examens biologiques")
    _leaf(root, "effectiveTime", value=when)
    _fixed(root, "confidentialityCode", code="N", displayName="Normal",
        codeSystem="2.16.840.1.113883.5.25")  # fmt: skip
    _fixed(root, "languageCode", code="fr-FR")
    _leaf(root, "setId", root=_oid(sender, msg.value("MSH-3.1"), msg.value("MSH-4.1"), order))
    _leaf(root, "versionNumber", value=str(version_number(collected, reported)))
    _record_target(root, msg, pid)
    _author(root, msg, biologist, org, when)
    _custodian(root, msg, org)
    legal = _el(root, "legalAuthenticator")
    _leaf(legal, "time", value=when)
    _fixed(legal, "signatureCode", code="S")
    _entity(legal, "assignedEntity", msg, biologist, org)
    service = _el(_el(root, "documentationOf"), "serviceEvent")
    _leaf(service, "code", **_battery(msg, obr))
    span = _el(service, "effectiveTime")
    _leaf(span, "low", value=ts(collected or reported))
    _leaf(span, "high", value=when)
    performer = _el(service, "performer", typeCode="PRF")
    _fixed(performer, "templateId", root=PERFORMER_TEMPLATE)
    _leaf(_el(performer, "time"), "high", value=when)
    _entity(performer, "assignedEntity", msg, biologist, org, setting=True)
    encounter = _el(_el(root, "componentOf"), "encompassingEncounter")
    _leaf(encounter, "effectiveTime", value=ts(collected or reported))
    _entity(_el(encounter, "responsibleParty"), "assignedEntity", msg, biologist, org)
    facility = _el(_el(encounter, "location"), "healthCareFacility")
    _fixed(facility, "code", code="SA29", codeSystem="1.2.250.1.71.4.2.4",
        displayName="Laboratoire de biologie médicale")  # fmt: skip

    body = _el(_el(root, "component"), "structuredBody")
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
    lines = [f"Compte rendu d'examens biologiques - {msg.value('MSH-4.1')} - {reported}"]
    for obr_seg, obxs in groups:
        findings += _section(body, msg, obr_seg, obxs, lines)
    _pdf_section(body, pdf_copy.render(lines), document_id)
    return xmlwriter.tostring(root), findings


def _unrepresentable(exc: xmlwriter.InvalidXmlText) -> Finding:
    return error(
        "crbio.xml-character",
        f"the results carry a character a CDA document cannot hold ({exc}), "
        "typically from a hex escape (\\Xhh\\) of a control character",
        layer=LAYER,
        fix="send text values without control characters",
        hl7_code=102,
    )


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
            _leaf(role, "id", root=oid[0], extension=comps[0])
    patient = _el(role, "patient", classCode="PSN")
    name = _el(patient, "name")
    family, given, more = (msg.value(f"PID-5.{i}", pid) for i in (1, 2, 3))
    _leaf(name, "family", family, qualifier="BR")
    _leaf(name, "given", " ".join(p for p in (given, more) if p))
    _leaf(name, "given", given, qualifier="BR")
    gender = msg.value("PID-8", pid) or "U"
    _leaf(patient, "administrativeGenderCode", code=gender if gender in "MFU" else "U",
        codeSystem="2.16.840.1.113883.5.1")  # fmt: skip
    _leaf(patient, "birthTime", value=msg.value("PID-7.1", pid))
    county = next(
        (
            comps[8]
            for rep in msg.repetitions(pid.field(11))
            if (comps := msg.components(rep) + [""] * 9)[6] == "BDL" and comps[8]
        ),
        "",
    )  # birth address (BDL): COG code of the birthplace, one of the INS traits
    addr = _el(_el(_el(patient, "birthplace"), "place"), "addr")
    if county:
        _leaf(addr, "county", county)
    else:  # the sender did not give it: say so rather than leave the INS traits incomplete
        _fixed(addr, "county", nullFlavor="UNK")


def _person(msg: Message, raw: str) -> Person | None:
    """An XCN (OBX-16) or CNN (OBR-32: components as subcomponents) with an id, else None."""
    if not raw:
        return None
    comps = msg.components(msg.repetitions(raw)[0])
    first = comps[0].split(msg.delimiters.subcomponent)
    # CNN inside NDL (OBR-32): id&family&given in the first component; XCN: id^family^given
    parts = [*first, "", ""] if len(first) > 1 else [*comps, "", ""]
    return Person(parts[0], parts[1], parts[2]) if parts[0] else None


def _responsible(msg: Message, obr: Segment, groups) -> Person | None:
    """The biologist: OBR-32 principal result interpreter, else the first OBX-16."""
    person = _person(msg, obr.field(32))
    for _obr, obxs in groups:
        for _n, obx in obxs:
            person = person or _person(msg, obx.field(16))
    return person


def _org_id(msg: Message, lab: Laboratory) -> dict[str, str]:
    """The laboratory's id: national structure id (MSH-4.2, else configured), else a local OID."""
    national = msg.value("MSH-4.2") or lab.structure_id
    if national:
        return {"root": STRUCTURE_ID, "extension": national}
    return {"root": _oid("facility"), "extension": msg.value("MSH-4.1")}


def _unknown_contacts(parent) -> None:
    _fixed(parent, "addr", nullFlavor="UNK")
    _fixed(parent, "telecom", nullFlavor="UNK")


def _organisation(parent, tag: str, msg: Message, org: dict[str, str], setting=False) -> None:
    node = _el(parent, tag)
    _leaf(node, "id", **org)
    _leaf(node, "name", msg.value("MSH-4.1"))
    _fixed(node, "telecom", nullFlavor="UNK")  # organisations: telecom before addr
    _fixed(node, "addr", nullFlavor="UNK")
    if setting:
        _fixed(node, "standardIndustryClassCode", code="AMBULATOIRE", displayName="Ambulatoire",
            codeSystem=PRACTICE_SETTING)  # fmt: skip


def _entity(parent, tag, msg, person: Person | None, org, setting=False) -> None:
    """An assignedEntity: the biologist with the laboratory, or the laboratory alone."""
    entity = _el(parent, tag)
    if person is None:
        _leaf(entity, "id", **org)
        _unknown_contacts(entity)
    else:
        _leaf(entity, "id", root=RPPS, extension=person.id)
        if person.profession:
            _leaf(entity, "code", code=person.profession, displayName=person.profession_name,
                codeSystem=PROFESSION)  # fmt: skip
        else:
            _fixed(entity, "code", nullFlavor="UNK")
        _unknown_contacts(entity)
        name = _el(_el(entity, "assignedPerson"), "name")
        _leaf(name, "given", person.given)
        _leaf(name, "family", person.family or "?")
    _organisation(entity, "representedOrganization", msg, org, setting)


def _author(root, msg: Message, person: Person | None, org, when: str) -> None:
    author = _el(root, "author")
    _leaf(author, "time", value=when)
    if person is not None and person.profession:  # CI-SIS: an author person needs a profession
        _entity(author, "assignedAuthor", msg, person, org)
        return
    # the laboratory information system that produced the results
    assigned = _el(author, "assignedAuthor")
    _leaf(assigned, "id", root=_oid("application", msg.value("MSH-4.1")),
        extension=msg.value("MSH-3.1") or "SIL")  # fmt: skip
    device = _el(assigned, "assignedAuthoringDevice")
    _leaf(device, "manufacturerModelName", msg.value("MSH-3.1"))
    _leaf(device, "softwareName", msg.value("MSH-3.1"))
    _organisation(assigned, "representedOrganization", msg, org)


def _custodian(root, msg: Message, org) -> None:
    assigned = _el(_el(root, "custodian"), "assignedCustodian")
    _organisation(assigned, "representedCustodianOrganization", msg, org)


def _battery(msg: Message, obr: Segment) -> dict[str, str]:
    code, display, system = (msg.value(f"OBR-4.{i}", obr) for i in (1, 2, 3))
    if system == "LN" and code:
        return {"code": code, "codeSystem": LOINC, "displayName": display or code}
    return {"code": "26436-6", "codeSystem": LOINC, "displayName": "Laboratory studies"}


def _section(body, msg, obr: Segment, obxs: list[tuple[int, Segment]], lines) -> list[Finding]:
    """One chapter per order: a sub-chapter with the narrative table and the results entry."""
    findings: list[Finding] = []
    battery = _battery(msg, obr)
    chapter = _el(_el(body, "component"), "section")
    for template in CHAPTER_TEMPLATES:
        _fixed(chapter, "templateId", root=template)
    _leaf(chapter, "code", **battery)
    _leaf(chapter, "title", battery["displayName"])
    lines += ["", battery["displayName"]]
    section = _el(_el(chapter, "component"), "section")
    for template in SUBCHAPTER_TEMPLATES:
        _fixed(section, "templateId", root=template)
    _leaf(section, "code", **battery)
    table = _el(_el(section, "text"), "table")
    head = _el(_el(table, "thead"), "tr")
    for label in ("Analyse", "Résultat", "Unité", "Références", "Interprétation", "Statut"):
        _fixed(head, "th", label)
    tbody = _el(table, "tbody")
    entry = _el(section, "entry", typeCode="DRIV")
    for template in ENTRY_TEMPLATES:
        _fixed(entry, "templateId", root=template)
    act = _el(entry, "act", classCode="ACT", moodCode="EVN")
    _leaf(act, "code", **battery)
    final = all(obx.field(11) in ("F", "C") for _n, obx in obxs)
    _fixed(act, "statusCode", code="completed" if final else "active")
    for n, obx in obxs:
        findings += _observation(act, tbody, msg, obx, n, lines)
    return findings


def _pdf_section(body, pdf: bytes, document_id: str) -> None:
    """FR-Document-PDF-copie: the report rendered as a PDF (required by CR-BIO 2024.01)."""
    section = _el(_el(body, "component"), "section")
    _fixed(section, "templateId", root=PDF_SECTION_TEMPLATE)
    _fixed(section, "code", code="55108-5", displayName="Copie du document", codeSystem=LOINC)
    _fixed(section, "title", "Copie du document")
    row = _el(_el(_el(_el(section, "text"), "table"), "tbody"), "tr")
    _fixed(_el(row, "td"), "renderMultiMedia", referencedObject="pdf-copy")
    organizer = _el(_el(section, "entry"), "organizer", classCode="CLUSTER", moodCode="EVN")
    _fixed(organizer, "templateId", root=ATTACHED_TEMPLATE)
    _leaf(organizer, "id", root=_oid("pdf-copy", document_id))
    _fixed(organizer, "code", code="55107-7", displayName="Document attaché", codeSystem=LOINC)
    _fixed(organizer, "statusCode", code="completed")
    kind = _el(_el(organizer, "component"), "observation", classCode="OBS", moodCode="EVN")
    for template in ATTACHED_TYPE_TEMPLATES:
        _fixed(kind, "templateId", root=template)
    _leaf(kind, "id", root=_oid("pdf-copy-type", document_id))
    _fixed(kind, "code", code="69764-9", displayName="Type de document", codeSystem=LOINC)
    _fixed(_el(kind, "text"), "reference", value="#pdf-copy")
    _fixed(kind, "statusCode", code="completed")
    _fixed(kind, "effectiveTime", nullFlavor="NA")
    sub(kind, "value", {"xsi:type": "CD", "code": "55108-5",
                        "displayName": "Copie du document", "codeSystem": LOINC})  # fmt: skip
    media = _el(_el(organizer, "component"), "observationMedia", classCode="OBS",
                moodCode="EVN", ID="pdf-copy")  # fmt: skip
    _leaf(media, "value", base64.b64encode(pdf).decode("ascii"), mediaType="application/pdf",
        representation="B64")  # fmt: skip


def _observation(act, tbody, msg: Message, obx: Segment, n: int, lines) -> list[Finding]:
    findings: list[Finding] = []
    code, display, system = msg.component_values(obx, 3, 3)
    value_type = obx.field(2)
    value = msg.field_value(obx, 5)
    unit, _, unit_system = msg.component_values(obx, 6, 3)
    ref_range, flag, status = (msg.field_value(obx, i) for i in (7, 8, 11))
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
    label = display or code
    cells = (label, value, unit, ref_range, flag, status)
    tbody.children.append(
        f'<tr ID="obs-{n}">'
        + "".join([f"<td>{xmlwriter.text(c)}</td>" if c else "<td/>" for c in cells])
        + "</tr>"
    )
    lines.append("  ".join(c for c in cells[:5] if c))
    parts = [
        _OBSERVATION_START,
        start("code", _present(code=code, codeSystem=LOINC, displayName=label)),
        f'><originalText><reference value="#obs-{n}"/></originalText></code>',
        # CR-BIO allows completed or aborted only: a preliminary value is still a produced
        # result; its status shows in the act (active) and the narrative (OBX-11)
        '<statusCode code="completed"/>',
    ]
    [when] = msg.component_values(obx, 14, 1)
    if when:  # a time that is blank once stripped gives an empty element, as it always has
        moment = ts(when)
        parts.append(f'<effectiveTime value="{xmlwriter.attr(moment)}"/>' if moment else
                     "<effectiveTime/>")  # fmt: skip
    escaped_unit = xmlwriter.attr(unit or "1")
    xml, problems = _value(value_type, value, escaped_unit, msg, obx, n)
    parts.append(xml)
    findings += problems
    if flag in _INTERPRETATIONS:
        parts.append(f'<interpretationCode code="{xmlwriter.attr(flag)}" '
                     f'codeSystem="{INTERPRETATION}"/>')  # fmt: skip
    if ref_range:
        parts.append(_reference_range(ref_range, escaped_unit, value_type))
    parts.append("</observation></entryRelationship>")
    act.children.append("".join(parts))
    return findings


def _present(**attrs: str) -> dict[str, str]:
    """The attributes that have a value (an empty attribute is left out, as ``_el`` does)."""
    return {k: v for k, v in attrs.items() if v}


def _given(attrs: dict[str, str]) -> dict[str, str]:
    """``attrs`` without those whose value is empty (most have none: no copy then)."""
    return attrs if all(attrs.values()) else _present(**attrs)


def _value(value_type, value, unit, msg, obx, n) -> tuple[str, list[Finding]]:
    """OBX-5 as the observation's value element (empty when there is none); ``unit`` is
    already escaped."""
    if value_type == "NM":
        try:
            float(value)
        except ValueError:
            return "", [
                error(
                    "crbio.numeric",
                    "OBX-2 is NM but OBX-5 is not a number",
                    location=f"OBX[{n}]-5",
                    layer=LAYER,
                    hl7_code=102,
                )
            ]
        return f'<value xsi:type="PQ" value="{xmlwriter.attr(value)}" unit="{unit}"/>', []
    if value_type in ("CE", "CWE"):
        code, display, system = msg.component_values(obx, 5, 3)
        attrs = {"xsi:type": "CD", "code": code, "displayName": display}
        if system == "LN":
            attrs["codeSystem"] = LOINC
        return leaf("value", _present(**attrs)), []
    if value:
        return f'<value xsi:type="ST">{xmlwriter.text(value)}</value>', []
    return "", []


def _reference_range(text: str, unit: str, value_type: str) -> str:
    """OBX-7 as a referenceRange: low-high for a numeric result, else its text; ``unit`` is
    already escaped."""
    low, sep, high = text.partition("-")
    try:
        if value_type != "NM" or not sep:
            raise ValueError
        float(low)
        float(high)
    except ValueError:
        inner = f"<text>{xmlwriter.text(text)}</text>"
    else:
        low, high = xmlwriter.attr(low.strip()), xmlwriter.attr(high.strip())
        inner = (
            f'<value xsi:type="IVL_PQ"><low value="{low}" unit="{unit}"/>'
            f'<high value="{high}" unit="{unit}"/></value>'
        )
    return f"<referenceRange><observationRange>{inner}</observationRange></referenceRange>"
