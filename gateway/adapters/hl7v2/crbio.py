"""Raw lab results (IHE LAB-3 ORU^R01) → a CI-SIS CR-BIO CDA (level 3). Pure and deterministic.

Header from MSH/PID/PV1/ORC/OBR, one section per order (OBR) with a narrative table, one lab
observation per OBX (LOINC code, UCUM unit, interpretation, reference range).

Deterministic on purpose: a resend of the same report yields the same bytes under the same
id, so the record store files it once. Nothing of the message's transport enters the document:
not MSH-10 (a resend may get a new one), not MSH-7 (a resend may be built again). Versions
without state: all reports of one order share a setId (sender + filler order number),
versionNumber = 1 + 3 × (seconds from specimen collection, OBR-7, to the report, OBR-22) + the
report's status rank (0 preliminary, 1 final, 2 correction), and the document id is derived
from the setId and the version (``report_id``). Both times are HL7 DTM to the minute at least,
with or without an offset (none: French local time), and are compared as UTC instants. Later
reports get higher versions; within one second (or one minute, at minute precision) a final
still outranks a preliminary and a correction a final. A report whose versions cannot be
ordered this way (OBR-7 or OBR-22 missing, unreadable or coarser than the minute, a report
time without an offset in the hour the clocks repeat in autumn, report before collection) is
refused (AE), rather than given a version the record store would refuse as a conflict, or
file behind an earlier report, after the sender was told AA.

One patient per message: an ORU^R01 whose PATIENT_RESULT group repeats is refused by the
intake before conversion. OBX-11 decides what a result is: W (posted in error) and D
(deleted) are refused (the laboratory sends a corrected report, OBX-11 C); X (cannot be
obtained) and N (not asked) become an observation ``aborted`` with no value. Every repetition
of a text value (ST/TX/FT) is a line of the result, and NTE comments are carried: after an
OBR, the order's comment; after an OBX, that result's (IHE PCC / CI-SIS FR-Commentaire-ER
entries pointing at the narrative).
"""

from __future__ import annotations

import base64
import functools
import re
import textwrap
import uuid
from dataclasses import dataclass, field

from gateway.adapters.hl7v2 import pdf_copy, report_time, xmlwriter
from gateway.adapters.hl7v2.parser import Message, Segment
from gateway.adapters.hl7v2.xmlwriter import Node, leaf, start, sub
from gateway.findings import Finding, error, warning

LAYER = report_time.LAYER  # the conversion's findings, times and versions included
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
COMMENT_TEMPLATES = (  # FR-Commentaire-ER (CCD comment, IHE PCC comments, CI-SIS)
    "2.16.840.1.113883.10.20.1.40",
    "1.3.6.1.4.1.19376.1.5.3.1.4.2",
    "1.2.250.1.213.1.1.3.32",
)
_NS = uuid.UUID("0b7d7a52-61e8-4a36-8c4c-4d5b0e7a2f10")
_OBSERVATION_START = (
    '<entryRelationship typeCode="COMP"><observation classCode="OBS" moodCode="EVN">'
    + "".join(f'<templateId root="{t}"/>' for t in OBSERVATION_TEMPLATES)
)
_INTERPRETATIONS = frozenset({"N", "L", "H", "LL", "HH", "A", "AA", "<", ">", "S", "R", "I"})
# OBX-11 (HL7 table 0085) statuses whose result is never filed as a valid observation: the
# laboratory must send the report again, corrected (OBX-11 C), without or with the right value.
_REFUSED_STATUSES = {"W": "posted in error (W)", "D": "deleted (D)"}
# Terminal statuses without a result: the observation is "aborted" and carries no value.
_NO_RESULT = {"X": "non réalisable", "N": "non demandé"}
# U: made final without the value being sent again; with its value it is a final result
_FINAL = frozenset({"F", "C", "U", *_NO_RESULT})
_TEXT_TYPES = frozenset({"", "ST", "TX", "FT"})
# OBX-2 value types a CR-BIO observation can hold; anything else (ED, RP, …) is refused
_VALUE_TYPES = _TEXT_TYPES | {"NM", "SN", "CE", "CWE", "CNE", "DT", "TM", "TS", "DTM"}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_PDF_WIDTH = 100  # characters a line of the PDF copy shows


def _oid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(_NS, '|'.join(parts)).int}"


def report_status(groups: list[OrderGroup]) -> str:
    """The report's status from its results' OBX-11: C when final with a correction, F when
    every result is final, else P (preliminary: results still to come or to be verified)."""
    statuses = [r.obx.field(11) for g in groups for r in g.results]
    if not statuses or any(s not in _FINAL for s in statuses):
        return "P"
    return "C" if "C" in statuses else "F"


def report_id(msg: Message, sender: str) -> str:
    """The id of the CR-BIO ``msg`` converts to: from its setId and versionNumber, what
    identifies the report clinically, never from the message's transport (MSH-10, MSH-7), so
    that the same report sent again is the same document (a duplicate for the record)."""
    obr = _first_obr(msg)
    groups, _ = _order_groups(msg)
    version, _ = report_time.version(
        msg.value("OBR-7", obr), msg.value("OBR-22", obr), report_status(groups)
    )
    return _document_id(_set_id(msg, sender, obr), version)


def _first_obr(msg: Message) -> Segment:
    obrs = msg.all("OBR")
    return obrs[0] if obrs else Segment("OBR", ["OBR"])


def _order_number(msg: Message, obr: Segment) -> str:
    return msg.value("OBR-3.1", obr) or msg.value("ORC-3.1") or msg.value("OBR-2.1", obr)


def _set_id(msg: Message, sender: str, obr: Segment) -> str:
    """All reports of one order: sender, sending application and facility, order number."""
    order = _order_number(msg, obr)
    return _oid(sender, msg.value("MSH-3.1"), msg.value("MSH-4.1"), order)


def _document_id(set_id: str, version: int) -> str:
    return _oid("report", set_id, str(version))


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


@dataclass(frozen=True, slots=True)
class Result:
    """One OBX (numbered in message order, 1-based) with the NTE comments that follow it."""

    n: int
    obx: Segment
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OrderGroup:
    """One OBR with the NTE comments between it and its first OBX, and its results."""

    obr: Segment
    notes: list[str] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)


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
    msg: Message, sender: str, document_id: str | None = None, lab: Laboratory | None = None
) -> tuple[bytes, list[Finding]]:
    """The CR-BIO CDA for ``msg`` and the findings of the conversion (errors: no CDA).
    ``document_id``: None for the report's own (``report_id``)."""
    try:
        return _convert(msg, sender, document_id, lab or Laboratory())
    except xmlwriter.InvalidXmlText as exc:
        return b"", [_unrepresentable(exc)]


def _convert(
    msg: Message, sender: str, document_id: str | None, lab: Laboratory
) -> tuple[bytes, list[Finding]]:
    findings: list[Finding] = []
    obr = _first_obr(msg)
    pid = msg.first("PID") or Segment("PID", ["PID"])
    reported = msg.value("OBR-22", obr)  # never MSH-7: a resend may build the message again
    collected = msg.value("OBR-7", obr)
    if not _order_number(msg, obr):
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
    groups, unplaced = _order_groups(msg)
    findings += unplaced
    status = report_status(groups)
    version, problems = report_time.version(collected, reported, status)
    findings += problems
    set_id = _set_id(msg, sender, obr)
    document_id = document_id or _document_id(set_id, version)
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
    when = report_time.ts(reported)

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
    _leaf(root, "setId", root=set_id)
    _leaf(root, "versionNumber", value=str(version))
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
    _leaf(span, "low", value=report_time.ts(collected or reported))
    _leaf(span, "high", value=when)
    performer = _el(service, "performer", typeCode="PRF")
    _fixed(performer, "templateId", root=PERFORMER_TEMPLATE)
    _leaf(_el(performer, "time"), "high", value=when)
    _entity(performer, "assignedEntity", msg, biologist, org, setting=True)
    encounter = _el(_el(root, "componentOf"), "encompassingEncounter")
    _leaf(encounter, "effectiveTime", value=report_time.ts(collected or reported))
    _entity(_el(encounter, "responsibleParty"), "assignedEntity", msg, biologist, org)
    facility = _el(_el(encounter, "location"), "healthCareFacility")
    _fixed(facility, "code", code="SA29", codeSystem="1.2.250.1.71.4.2.4",
        displayName="Laboratoire de biologie médicale")  # fmt: skip

    body = _el(_el(root, "component"), "structuredBody")
    if not any(g.results for g in groups):
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
    for k, group in enumerate(groups, start=1):
        findings += _section(body, msg, group, k, lines)
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


def _order_groups(msg: Message) -> tuple[list[OrderGroup], list[Finding]]:
    """OBR with their OBX and NTE segments (an NTE belongs to the OBR or OBX before it), and
    warnings for the NTE that belong to neither (a patient comment after PID)."""
    groups: list[OrderGroup] = []
    findings: list[Finding] = []
    n = notes = 0
    last: OrderGroup | Result | None = None
    for seg in msg.segments:
        if seg.name == "OBR":
            last = OrderGroup(seg)
            groups.append(last)
        elif seg.name == "OBX":
            n += 1
            last = Result(n, seg) if groups else None
            if last is not None:
                groups[-1].results.append(last)
        elif seg.name == "NTE":
            notes += 1
            lines = _lines(msg.field_values(seg, 3))
            if last is not None:
                last.notes.extend(lines)
            elif lines:
                findings.append(_unplaced_note(notes))
        elif seg.name not in ("ORC", "TQ1", "TQ2", "CTD", "SPM", "SID", "CTI", "PRT", "FT1"):
            last = None  # PID, PV1…: an NTE after them is not about a result
    return groups, findings


def _unplaced_note(k: int) -> Finding:
    return warning(
        "crbio.nte",
        "an NTE that follows neither an OBR nor an OBX (e.g. a patient comment) is not part of "
        "the results and is not carried into the report",
        location=f"NTE[{k}]",
        layer=LAYER,
    )


def _lines(values: list[str]) -> list[str]:
    """Text lines of a TX/FT value or an NTE-3: every repetition, split at line breaks
    (\\.br\\), without trailing blanks; empty trailing lines dropped."""
    lines = [line.rstrip() for value in values for line in value.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


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


def _responsible(msg: Message, obr: Segment, groups: list[OrderGroup]) -> Person | None:
    """The biologist: OBR-32 principal result interpreter, else the first OBX-16."""
    person = _person(msg, obr.field(32))
    for group in groups:
        for result in group.results:
            person = person or _person(msg, result.obx.field(16))
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


def _section(body, msg, group: OrderGroup, k: int, lines) -> list[Finding]:
    """One chapter per order: a sub-chapter with the narrative (the order's comment, then the
    results table) and the results entry."""
    findings: list[Finding] = []
    battery = _battery(msg, group.obr)
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
    text = _el(section, "text")
    note_id = f"obr-{k}-nte"
    if group.notes:
        text.children.append(f'<paragraph ID="{note_id}">{_multiline(group.notes)}</paragraph>')
        for line in group.notes:
            lines += _wrapped(f"Commentaire : {line}", "")
    table = _el(text, "table")
    head = _el(_el(table, "thead"), "tr")
    for label in ("Analyse", "Résultat", "Unité", "Références", "Interprétation", "Statut"):
        _fixed(head, "th", label)
    tbody = _el(table, "tbody")
    entry = _el(section, "entry", typeCode="DRIV")
    for template in ENTRY_TEMPLATES:
        _fixed(entry, "templateId", root=template)
    act = _el(entry, "act", classCode="ACT", moodCode="EVN")
    _leaf(act, "code", **battery)
    final = all(r.obx.field(11) in _FINAL for r in group.results)
    _fixed(act, "statusCode", code="completed" if final else "active")
    for result in group.results:
        findings += _observation(act, tbody, msg, result, lines)
    if group.notes:
        act.children.append(_comment(note_id))
    return findings


def _wrapped(line: str, indent: str) -> list[str]:
    """A line of the PDF copy, wrapped so that nothing is cut at the page's width."""
    if len(indent) + len(line) <= _PDF_WIDTH and line.isprintable() and line[-1:] != " ":
        return [indent + line]  # what textwrap gives a line that fits, ~20x sooner
    return textwrap.wrap(line, _PDF_WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=True) or [indent]  # fmt: skip


def _multiline(lines: list[str]) -> str:
    """Narrative text of several lines (escaped), separated by <br/>."""
    return "<br/>".join(xmlwriter.text(line) for line in lines)


def _comment(reference: str) -> str:
    """An FR-Commentaire-ER entry pointing at the narrative that holds the comment's text."""
    return (
        '<entryRelationship typeCode="SUBJ" inversionInd="true">'
        '<act classCode="ACT" moodCode="EVN">'
        + "".join(f'<templateId root="{t}"/>' for t in COMMENT_TEMPLATES)
        + f'<code code="48767-8" codeSystem="{LOINC}" displayName="Commentaire"/>'
        f'<text><reference value="#{reference}"/></text><statusCode code="completed"/>'
        "</act></entryRelationship>"
    )


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


def _observation(act, tbody, msg: Message, result: Result, lines) -> list[Finding]:
    n, obx = result.n, result.obx
    findings: list[Finding] = []
    code, display, system = msg.component_values(obx, 3, 3)
    value_type = obx.field(2)
    values = msg.field_values(obx, 5)
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
    findings += _status_findings(status, n, any(values))
    findings += _value_type_findings(value_type, values, n)
    if value_type in ("NM", "SN") and unit and unit_system not in ("UCUM", ""):
        findings.append(
            warning(
                "crbio.ucum",
                f"OBX-6 unit system is {unit_system!r}; the unit is copied as UCUM",
                location=f"OBX[{n}]-6.3",
                layer=LAYER,
                hl7_code=103,
            )
        )
    no_result = _NO_RESULT.get(status)
    if no_result and any(values):
        findings.append(
            warning(
                "crbio.no-result",
                f"OBX-11 is {status} ({no_result}): the value in OBX-5 is not reported",
                location=f"OBX[{n}]-5",
                layer=LAYER,
                hl7_code=102,
            )
        )
    label = display or code
    shown = [no_result] if no_result else _shown(value_type, values, msg)
    cells = (
        xmlwriter.text(label),
        _multiline(shown),
        *(xmlwriter.text(c) for c in (unit, ref_range, flag, status)),
    )
    tbody.children.append(
        f'<tr ID="obs-{n}">' + "".join([f"<td>{c}</td>" if c else "<td/>" for c in cells]) + "</tr>"
    )
    plain = (label, shown[0] if shown else "", unit, ref_range, flag)
    lines += _wrapped("  ".join(c for c in plain if c), "")
    for more in shown[1:]:
        lines += _wrapped(more, "    ")
    if result.notes:
        tbody.children.append(
            f'<tr ID="obs-{n}-nte"><td>Commentaire</td>'
            f'<td colspan="5">{_multiline(result.notes)}</td></tr>'
        )
        for line in result.notes:
            lines += _wrapped(f"Commentaire : {line}", "    ")
    parts = [
        _OBSERVATION_START,
        start("code", _present(code=code, codeSystem=LOINC, displayName=label)),
        f'><originalText><reference value="#obs-{n}"/></originalText></code>',
        # CR-BIO allows completed or aborted only: a preliminary value is still a produced
        # result; its status shows in the act (active) and the narrative (OBX-11); a result
        # that cannot be obtained (X) or was not asked (N) is aborted, without a value
        '<statusCode code="aborted"/>' if no_result else '<statusCode code="completed"/>',
    ]
    [when] = msg.component_values(obx, 14, 1)
    if when:  # a time that is blank once stripped gives an empty element, as it always has
        moment = report_time.ts(when)
        parts.append(f'<effectiveTime value="{xmlwriter.attr(moment)}"/>' if moment else
                     "<effectiveTime/>")  # fmt: skip
    escaped_unit = xmlwriter.attr(unit or "1")
    if not no_result:
        xml, problems = _value(value_type, values, escaped_unit, msg, obx, n)
        parts.append(xml)
        findings += problems
        if flag in _INTERPRETATIONS:
            parts.append(f'<interpretationCode code="{xmlwriter.attr(flag)}" '
                         f'codeSystem="{INTERPRETATION}"/>')  # fmt: skip
    if result.notes:
        parts.append(_comment(f"obs-{n}-nte"))
    if ref_range:
        parts.append(_reference_range(ref_range, escaped_unit, value_type))
    parts.append("</observation></entryRelationship>")
    act.children.append("".join(parts))
    return findings


def _status_findings(status: str, n: int, valued: bool) -> list[Finding]:
    """OBX-11 W (posted in error) or D (deleted): never filed as a result. U without its value:
    each report is a whole new version of the document, so a result made final without being
    sent again would disappear from the current version."""
    what = _REFUSED_STATUSES.get(status)
    if what is not None:
        return [
            error(
                "crbio.result-status",
                f"OBX-11 says this result was {what}: it cannot be filed as a valid result, "
                "and a report holding it is refused",
                location=f"OBX[{n}]-11",
                layer=LAYER,
                hl7_code=103,
                fix="send the report again as a correction (OBX-11 C) without this result, or "
                "with its right value; a result sent for the wrong patient must also be "
                "corrected in that patient's report",
            )
        ]
    if status == "U" and not valued:
        return [
            error(
                "crbio.result-status",
                "OBX-11 is U (made final without sending the value again): every report "
                "replaces the whole document, so the result would be lost from it",
                location=f"OBX[{n}]-11",
                layer=LAYER,
                hl7_code=103,
                fix="send the result again with its value and OBX-11 F",
            )
        ]
    return []


def _value_type_findings(value_type: str, values: list[str], n: int) -> list[Finding]:
    if value_type not in _VALUE_TYPES:
        return [
            error(
                "crbio.value-type",
                f"OBX-2 value type {value_type!r} cannot be a result of a CR-BIO converted from "
                "raw results (embedded data such as a PDF is not a result value)",
                location=f"OBX[{n}]-2",
                layer=LAYER,
                hl7_code=102,
                fix="send results as NM, SN, ST, TX, FT, CE or CWE; a report document travels "
                "as a CDA (OBX-2 ED, OBX-5 ^TEXT^XML^Base64^<CDA>)",
            )
        ]
    if value_type not in _TEXT_TYPES and sum(1 for v in values if v) > 1:
        return [
            error(
                "crbio.repetitions",
                f"OBX-5 of type {value_type} repeats: a coded or numeric result has one value",
                location=f"OBX[{n}]-5",
                layer=LAYER,
                hl7_code=102,
                fix="send one OBX per value",
            )
        ]
    return []


def _shown(value_type: str, values: list[str], msg: Message) -> list[str]:
    """The value as narrative lines: every line of a text value; an SN without its carets."""
    if value_type in _TEXT_TYPES:
        return _lines(values)
    first = values[0] if values else ""
    if value_type == "SN":
        return [_sn_text(first, msg)]
    if value_type in ("CE", "CWE", "CNE"):
        return [first]  # as before: the first repetition as written
    return [first] if first else []


def _present(**attrs: str) -> dict[str, str]:
    """The attributes that have a value (an empty attribute is left out, as ``_el`` does)."""
    return {k: v for k, v in attrs.items() if v}


def _given(attrs: dict[str, str]) -> dict[str, str]:
    """``attrs`` without those whose value is empty (most have none: no copy then)."""
    return attrs if all(attrs.values()) else _present(**attrs)


def _value(value_type, values, unit, msg, obx, n) -> tuple[str, list[Finding]]:
    """OBX-5 as the observation's value element (empty when there is none); ``unit`` is
    already escaped."""
    value = values[0] if values else ""
    if value_type == "NM":
        try:
            float(value)
        except ValueError:
            return "", [_not_numeric(n, "OBX-2 is NM but OBX-5 is not a number")]
        return f'<value xsi:type="PQ" value="{xmlwriter.attr(value)}" unit="{unit}"/>', []
    if value_type == "SN":
        return _structured_numeric(value, unit, msg, n)
    if value_type in ("CE", "CWE", "CNE"):
        code, display, system = msg.component_values(obx, 5, 3)
        attrs = {"xsi:type": "CD", "code": code, "displayName": display}
        if system == "LN":
            attrs["codeSystem"] = LOINC
        return leaf("value", _present(**attrs)), []
    if value_type in _TEXT_TYPES:
        value = "\n".join(_lines(values))
    if value:
        return f'<value xsi:type="ST">{xmlwriter.text(value)}</value>', []
    return "", []


def _not_numeric(n: int, message: str) -> Finding:
    return error("crbio.numeric", message, location=f"OBX[{n}]-5", layer=LAYER, hl7_code=102)


def _sn_parts(value: str, msg: Message) -> tuple[str, str, str, str]:
    """SN components: comparator, first number, separator or suffix, second number."""
    parts = [*msg.components(value), "", "", "", ""][:4]
    return parts[0].strip(), parts[1].strip(), parts[2].strip(), parts[3].strip()


def _sn_text(raw: str, msg: Message) -> str:
    """An SN as people write it: ``<0.5``, ``1-10``, ``1:128``, ``2+``."""
    return "".join(_sn_parts(raw, msg))


_BOUNDS = {"<": ("high", "false"), "<=": ("high", "true"), ">": ("low", "false"),
           ">=": ("low", "true")}  # fmt: skip


def _structured_numeric(raw: str, unit: str, msg: Message, n: int) -> tuple[str, list[Finding]]:
    """SN (comparator^num1^separator/suffix^num2) as a CDA value: a number as PQ; a bound
    (<, <=, >, >=) as IVL_PQ with one inclusive/exclusive limit; a range (num1-num2) as IVL_PQ;
    a ratio (1:128) or a categorical suffix (2+) as text, as written."""
    comparator, first, separator, second = _sn_parts(raw, msg)
    if not first or not _NUMBER.fullmatch(first) or (second and not _NUMBER.fullmatch(second)):
        return "", [_not_numeric(n, "OBX-2 is SN but OBX-5 is not <comparator>^<number>[^…]")]
    if not separator and not second:
        if comparator in ("", "="):
            return f'<value xsi:type="PQ" value="{first}" unit="{unit}"/>', []
        if comparator in _BOUNDS:
            side, inclusive = _BOUNDS[comparator]
            return (
                f'<value xsi:type="IVL_PQ"><{side} value="{first}" unit="{unit}" '
                f'inclusive="{inclusive}"/></value>',
                [],
            )
    if separator == "-" and second and not comparator:
        return (
            f'<value xsi:type="IVL_PQ"><low value="{first}" unit="{unit}"/>'
            f'<high value="{second}" unit="{unit}"/></value>',
            [],
        )
    if comparator in ("", "=", *_BOUNDS, "<>") and separator in (":", "/", "+", ""):
        return f'<value xsi:type="ST">{xmlwriter.text(_sn_text(raw, msg))}</value>', []
    return "", [_not_numeric(n, f"OBX-5 {raw!r} is not a structured numeric (SN) value")]


def _reference_range(text: str, unit: str, value_type: str) -> str:
    """OBX-7 as a referenceRange: low-high for a numeric result, else its text; ``unit`` is
    already escaped."""
    low, sep, high = text.partition("-")
    try:
        if value_type not in ("NM", "SN") or not sep:
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
