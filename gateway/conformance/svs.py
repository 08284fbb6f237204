"""IHE SVS value sets → the art-decor ``voc-*-DYNAMIC.xml`` shape the pack's schematrons read.

The StructurationMinimale rules read value sets as ``valueSets/valueSet/conceptList/concept``
files; the pack ships some of them only in SVS form (``jeuxDeValeurs/JDV_*.xml``). Converting
one into the other lets those rules run instead of failing on a missing file.
"""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from gateway.conformance import pack_xml

SVS = "urn:ihe:iti:svs:2008"
VOC_REFERENCE = re.compile(r"voc-(?P<oid>[0-9.]+)-DYNAMIC\.xml$")


def value_set_id(path: Path) -> str | None:
    """The OID of an SVS file's ValueSet, or None when the file is not an SVS value set."""
    try:
        for _event, el in etree.iterparse(str(path), events=("start",), resolve_entities=False):
            if el.tag == f"{{{SVS}}}ValueSet":
                return el.get("id")
    except etree.XMLSyntaxError:
        return None
    return None


def to_voc(svs_path: Path) -> bytes:
    """The art-decor form of one SVS value set (codes, code systems and display names)."""
    tree = pack_xml.parse(svs_path)
    vs = tree.find(f"{{{SVS}}}ValueSet")
    out = etree.Element("valueSets")
    value_set = etree.SubElement(
        out, "valueSet", id=vs.get("id", ""), name=vs.get("displayName", "")
    )
    concepts = etree.SubElement(value_set, "conceptList")
    for c in tree.iter(f"{{{SVS}}}Concept"):
        etree.SubElement(
            concepts,
            "concept",
            code=c.get("code", ""),
            codeSystem=c.get("codeSystem", ""),
            displayName=c.get("displayName", ""),
        )
    return etree.tostring(out, xml_declaration=True, encoding="UTF-8")
