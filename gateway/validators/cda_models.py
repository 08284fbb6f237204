"""Document-model rules written here (built-in tier): the body, and the CR-BIO and CR-IMG models.

A model applies when the document declares its templateId. The rules are the model's defining
constraints from the CI-SIS volets (document type code, IHE profile templateIds, body shape and
lab results), not a copy of the model schematrons, which the pack tier runs in full.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable

from lxml import etree

from gateway.adapters.cda.parser import CdaDocument
from gateway.adapters.cda.xpath import HL7, xp
from gateway.findings import Finding
from gateway.validators.cda_header import finding

LAYER = "cda-model"

CR_BIO = "1.2.250.1.213.1.1.1.55"
CR_IMG = "1.2.250.1.213.1.1.1.45"
IHE_PALM_LAB_REPORT = "1.3.6.1.4.1.19376.1.3.3"
IHE_LAB_SPECIALTY_SECTION = "1.3.6.1.4.1.19376.1.3.3.2.1"
IHE_XDS_SD = "1.3.6.1.4.1.19376.1.2.20"  # scanned / level-1 document
DICOM_IMAGING_REPORT = "1.2.840.10008.9.20"  # DICOM PS3.20 imaging report, level 3

_TEMPLATE_ROOTS = xp("h:templateId/@root")
_BODIES = xp("h:component/h:nonXMLBody | h:component/h:structuredBody")
_NON_XML_TEXT = xp("h:component/h:nonXMLBody/h:text")
_LAB_SECTIONS = xp(
    f"h:component/h:structuredBody/h:component/h:section[h:templateId/@root="
    f"'{IHE_LAB_SPECIALTY_SECTION}']"
)
_QUANTITIES = xp(".//h:observation/h:value[@xsi:type='PQ' or substring-after(@xsi:type, ':')='PQ']")

Rule = Callable[[etree._Element], Iterable[Finding]]


def _f(rule: str, message: str, at: etree._Element, child: str | None = None, **kw) -> Finding:
    return finding(rule, message, at, child, layer=LAYER, **kw)


def body(cd: etree._Element) -> Iterable[Finding]:
    """CDA R2: one component holding either a nonXMLBody (level 1) or a structuredBody."""
    bodies = _BODIES(cd)
    if len(bodies) != 1:
        yield _f(
            "cda.body",
            "ClinicalDocument/component must hold exactly one nonXMLBody or structuredBody",
            cd,
            "component",
        )
    for text in _NON_XML_TEXT(cd):
        if not text.get("mediaType") or text.get("representation") != "B64":
            yield _f(
                "cda.body.nonXMLBody",
                'nonXMLBody/text needs a mediaType and representation="B64"',
                text,
                hl7_code=102,
            )
            continue
        try:
            data = binascii.a2b_base64("".join((text.text or "").split()))
        except ValueError:  # binascii.Error, or a non-ASCII character (found by fuzzing)
            data = b""
        if not data:
            yield _f(
                "cda.body.nonXMLBody",
                "nonXMLBody/text must carry the document as non-empty base64",
                text,
                hl7_code=102,
            )


def _code_is(cd: etree._Element, rule: str, code: str, model: str) -> Iterable[Finding]:
    el = cd.find(f"{{{HL7}}}code")
    if el is not None and el.get("code") != code:  # its code system: cda.header.code
        yield _f(rule, f"a {model} document has type code {code} (LOINC)", el, hl7_code=103)


def cr_bio(cd: etree._Element) -> Iterable[Finding]:
    """CR-BIO (biology report), volet CR-BIO: IHE PaLM XD-LAB content, LOINC 11502-2."""
    roots = set(_TEMPLATE_ROOTS(cd))
    if CR_BIO not in roots:
        return
    yield from _code_is(cd, "cda.model.cr-bio.code", "11502-2", "CR-BIO")
    if IHE_PALM_LAB_REPORT not in roots:
        yield _f(
            "cda.model.cr-bio.templateId",
            f"a CR-BIO document declares the IHE laboratory report templateId "
            f"{IHE_PALM_LAB_REPORT}",
            cd,
            "templateId",
        )
    if cd.find(f"{{{HL7}}}component/{{{HL7}}}structuredBody") is None:
        yield _f("cda.model.cr-bio.body", "a CR-BIO document has a structuredBody", cd, "component")
        return
    if not _LAB_SECTIONS(cd):
        yield _f(
            "cda.model.cr-bio.section",
            f"a CR-BIO document has at least one laboratory specialty section "
            f"(templateId {IHE_LAB_SPECIALTY_SECTION})",
            cd.find(f"{{{HL7}}}component/{{{HL7}}}structuredBody"),
        )
    for value in _QUANTITIES(cd):
        # A nullFlavor says why there is no value (NA, not applicable); a PQ without unit is
        # dimensionless (HL7's default unit "1"): the pack accepts both, so must this tier.
        if not value.get("value") and value.get("nullFlavor") is None:
            yield _f(
                "cda.model.cr-bio.result",
                "a numeric lab result (PQ) has a value, or a nullFlavor saying why not",
                value,
                hl7_code=102,
            )


def cr_img(cd: etree._Element) -> Iterable[Finding]:
    """CR-IMG (imaging report), volet CR-IMG: LOINC 18748-4, level 1 (XDS-SD) or 3 (DICOM)."""
    roots = set(_TEMPLATE_ROOTS(cd))
    if CR_IMG not in roots:
        return
    yield from _code_is(cd, "cda.model.cr-img.code", "18748-4", "CR-IMG")
    level1 = cd.find(f"{{{HL7}}}component/{{{HL7}}}nonXMLBody") is not None
    expected = IHE_XDS_SD if level1 else DICOM_IMAGING_REPORT
    if expected not in roots:
        kind = "level-1 (PDF)" if level1 else "structured"
        yield _f(
            "cda.model.cr-img.templateId",
            f"a {kind} CR-IMG document declares templateId {expected}",
            cd,
            "templateId",
        )


RULES: tuple[Rule, ...] = (body, cr_bio, cr_img)


def validate(doc: CdaDocument) -> list[Finding]:
    return [f for rule in RULES for f in rule(doc.root)]
