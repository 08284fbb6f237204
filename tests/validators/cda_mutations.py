"""Minimal mutations of the repository's CDA fixtures, each breaking one rule.

Shared by the built-in and the pack tests: a mutation is a function editing the parsed
ClinicalDocument in place; ``mutate`` returns the serialised result.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from tests.conftest import FIXTURES

H = "urn:hl7-org:v3"
NS = {"h": H}
CRBIO = FIXTURES / "cda/crbio_glycemia.xml"
CRIMG = FIXTURES / "cda/crimg_level1_replacement.xml"

Mutation = Callable[[etree._Element], None]


def mutate(path, change: Mutation) -> bytes:
    tree = etree.parse(str(path))
    change(tree.getroot())
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def one(cd: etree._Element, xpath: str) -> etree._Element:
    [el] = cd.xpath(xpath, namespaces=NS)
    return el


def remove(xpath: str) -> Mutation:
    def change(cd):
        for el in cd.xpath(xpath, namespaces=NS):
            el.getparent().remove(el)

    return change


def set_attr(xpath: str, name: str, value: str) -> Mutation:
    def change(cd):
        one(cd, xpath).set(name, value)

    return change


def duplicate(xpath: str) -> Mutation:
    def change(cd):
        import copy

        el = one(cd, xpath)
        el.addnext(copy.deepcopy(el))

    return change


def swap_with_next(xpath: str) -> Mutation:
    """Put the element after its next sibling: elements out of CDA order."""

    def change(cd):
        el = one(cd, xpath)
        nxt = el.getnext()
        nxt.addnext(el)

    return change


def clear_text(xpath: str) -> Mutation:
    def change(cd):
        el = one(cd, xpath)
        for child in list(el):
            el.remove(child)
        el.text = ""

    return change


def add_related(type_code: str) -> Mutation:
    def change(cd):
        rel = etree.Element(f"{{{H}}}relatedDocument", typeCode=type_code)
        parent = etree.SubElement(rel, f"{{{H}}}parentDocument")
        etree.SubElement(parent, f"{{{H}}}id", root="1.2.250.1.999.1.1.1")
        one(cd, "h:componentOf").addprevious(rel)

    return change


def insert_after(xpath: str, tag: str, **attrib: str) -> Mutation:
    """Add an element (Clark name) right after the one ``xpath`` selects."""

    def change(cd):
        one(cd, xpath).addnext(etree.Element(tag, **attrib))

    return change


def add_non_xml_body(cd):
    body = etree.Element(f"{{{H}}}nonXMLBody")
    etree.SubElement(
        body, f"{{{H}}}text", mediaType="text/plain", representation="B64"
    ).text = "aGVsbG8="
    one(cd, "h:component").append(body)


WRONG_KEY_INS = "184127505612399"

# (fixture, mutation, the one error rule expected)
HEADER_MUTATIONS: dict[str, tuple] = {
    "realmCode": (CRBIO, remove("h:realmCode"), "cda.header.realmCode"),
    "typeId": (CRBIO, set_attr("h:typeId", "extension", "POCD_HD000041"), "cda.header.typeId"),
    "templateId": (
        CRBIO,
        remove("h:templateId[@root='1.2.250.1.213.1.1.1.1']"),
        "cda.header.templateId",
    ),
    "id": (CRBIO, set_attr("h:id", "root", "not an oid"), "cda.header.id"),
    "code": (CRBIO, set_attr("h:code", "codeSystem", "1.2.3.4"), "cda.header.code"),
    "title": (CRBIO, clear_text("h:title"), "cda.header.title"),
    "effectiveTime": (
        CRBIO,
        set_attr("h:effectiveTime", "value", "20261101"),
        "cda.header.effectiveTime",
    ),
    "confidentialityCode": (
        CRBIO,
        set_attr("h:confidentialityCode", "code", "X"),
        "cda.header.confidentialityCode",
    ),
    "languageCode": (
        CRBIO,
        set_attr("h:languageCode", "code", "en-US"),
        "cda.header.languageCode",
    ),
    "setId": (CRBIO, set_attr("h:setId", "root", "set-4711"), "cda.header.setId"),
    "versionNumber": (
        CRBIO,
        set_attr("h:versionNumber", "value", "0"),
        "cda.header.versionNumber",
    ),
    "recordTarget": (CRBIO, duplicate("h:recordTarget"), "cda.header.recordTarget"),
    "ins-missing": (
        CRBIO,
        remove("h:recordTarget/h:patientRole/h:id[@root='1.2.250.1.213.1.4.8']"),
        "cda.header.ins",
    ),
    "ins-nir-key": (
        CRBIO,
        set_attr("h:recordTarget/h:patientRole/h:id[1]", "extension", WRONG_KEY_INS),
        "ins.nir-key",
    ),
    "ins-identity": (
        CRBIO,
        remove("h:recordTarget/h:patientRole/h:patient/h:birthTime"),
        "cda.header.ins-identity",
    ),
    "author": (CRBIO, remove("h:author"), "cda.header.author"),
    "author-id": (
        CRBIO,
        set_attr("h:author/h:assignedAuthor/h:id", "extension", "8123"),
        "cda.header.author-id",
    ),
    "custodian": (CRBIO, remove("h:custodian"), "cda.header.custodian"),
    "legalAuthenticator": (
        CRBIO,
        set_attr("h:legalAuthenticator/h:signatureCode", "code", "X"),
        "cda.header.legalAuthenticator",
    ),
    "documentationOf": (CRBIO, remove("h:documentationOf"), "cda.header.documentationOf"),
    "relatedDocument": (CRBIO, add_related("APND"), "cda.header.relatedDocument"),
    "componentOf": (CRBIO, remove("h:componentOf"), "cda.header.componentOf"),
    "facilityType": (
        CRBIO,
        remove("h:componentOf//h:healthCareFacility/h:code"),
        "cda.header.facilityType",
    ),
}

# Header and model mutations that also break the CDA R2 structure itself: the schema layer
# (cda.schema) reports them beside the CI-SIS rule that explains them.
ALSO_SCHEMA = {"id", "author", "custodian", "body"}

MODEL_MUTATIONS: dict[str, tuple] = {
    "body": (CRBIO, add_non_xml_body, "cda.body"),
    "crbio-code": (CRBIO, set_attr("h:code", "code", "18748-4"), "cda.model.cr-bio.code"),
    "crbio-templateId": (
        CRBIO,
        remove("h:templateId[@root='1.3.6.1.4.1.19376.1.3.3']"),
        "cda.model.cr-bio.templateId",
    ),
    "crbio-section": (
        CRBIO,
        remove("h:component/h:structuredBody/h:component/h:section/h:templateId"),
        "cda.model.cr-bio.section",
    ),
    "crbio-result": (
        CRBIO,
        lambda cd: one(cd, ".//h:observation/h:value").attrib.pop("value"),
        "cda.model.cr-bio.result",
    ),
    "crimg-code": (CRIMG, set_attr("h:code", "code", "11502-2"), "cda.model.cr-img.code"),
    "crimg-templateId": (
        CRIMG,
        remove("h:templateId[@root='1.3.6.1.4.1.19376.1.2.20']"),
        "cda.model.cr-img.templateId",
    ),
    "nonXMLBody": (
        CRIMG,
        clear_text("h:component/h:nonXMLBody/h:text"),
        "cda.body.nonXMLBody",
    ),
}
