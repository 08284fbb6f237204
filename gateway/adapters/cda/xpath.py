"""Namespaces, compiled XPath expressions and element locations for CDA, built once at import."""

from lxml import etree

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSL = "http://www.w3.org/1999/XSL/Transform"
LAB = "urn:oid:1.3.6.1.4.1.19376.1.3.2"
SDTC = "urn:hl7-org:sdtc"
NS = {"h": HL7, "xsi": XSI, "lab": LAB, "sdtc": SDTC}

CLINICAL_DOCUMENT = f"{{{HL7}}}ClinicalDocument"


def xp(expr: str) -> etree.XPath:
    """Compile an XPath over the CDA namespaces (prefix ``h`` for urn:hl7-org:v3)."""
    return etree.XPath(expr, namespaces=NS)


# XDS practiceSettingCode: where the CI-SIS puts it (read by the header rules and the metadata).
PRACTICE_SETTING = xp(
    "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization"
    "/h:standardIndustryClassCode"
)


def path_of(el: etree._Element) -> str:
    """A readable XPath from the ClinicalDocument to ``el``: ``/ClinicalDocument/author[2]/time``.

    Positions are given only where same-named siblings exist; attributes are not addressed.
    The path starts at ClinicalDocument also when the document arrived wrapped in XSLT.
    """
    steps: list[str] = []
    node: etree._Element | None = el
    while node is not None and isinstance(node.tag, str):
        name = etree.QName(node).localname
        parent = node.getparent()
        if node.tag == CLINICAL_DOCUMENT or parent is None:
            steps.append(name)
            break
        same = [s for s in parent if s.tag == node.tag]
        steps.append(f"{name}[{same.index(node) + 1}]" if len(same) > 1 else name)
        node = parent
    return "/" + "/".join(reversed(steps))
