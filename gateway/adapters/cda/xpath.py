"""Namespaces and compiled XPath expressions for CDA, built once at import."""

from lxml import etree

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSL = "http://www.w3.org/1999/XSL/Transform"
LAB = "urn:oid:1.3.6.1.4.1.19376.1.3.2"
NS = {"h": HL7, "xsi": XSI, "lab": LAB}

CLINICAL_DOCUMENT = f"{{{HL7}}}ClinicalDocument"


def xp(expr: str) -> etree.XPath:
    """Compile an XPath over the CDA namespaces (prefix ``h`` for urn:hl7-org:v3)."""
    return etree.XPath(expr, namespaces=NS)
