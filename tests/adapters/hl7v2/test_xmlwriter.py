"""The conversion's element writer gives exactly the bytes lxml would for the same tree."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.adapters.hl7v2 import xmlwriter

V3 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
TAGS = ("section", "value", "td", "code")
XML_CHARS = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters="".join(map(chr, [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]))
    + "\ufffe\uffff",
)
VALUES = st.text(XML_CHARS, max_size=12) | st.sampled_from(
    ["a&b", "<x>", '"q"', "l1\nl2\r\t", "é€"]
)
ATTRS = st.dictionaries(st.sampled_from(["code", "value", "xsi:type", "ID"]), VALUES, max_size=3)


@st.composite
def trees(draw, depth=0):
    children = [] if depth > 2 else draw(st.lists(trees(depth + 1), max_size=3))
    text = draw(st.none() | VALUES)
    return (draw(st.sampled_from(TAGS)), draw(ATTRS), text, children)


def with_lxml(spec, parent=None):
    tag, attrs, text, children = spec
    clark = {(f"{{{XSI}}}type" if k == "xsi:type" else k): v for k, v in attrs.items()}
    if parent is None:
        node = etree.Element(f"{{{V3}}}{tag}", clark, nsmap={None: V3, "xsi": XSI})
    else:
        node = etree.SubElement(parent, f"{{{V3}}}{tag}", clark)
    if text is not None:
        node.text = text
    for child in children:
        with_lxml(child, node)
    return node


def with_writer(spec, parent=None):
    tag, attrs, text, children = spec
    if parent is None:
        node = xmlwriter.Node(tag, {"xmlns": V3, "xmlns:xsi": XSI, **attrs}, text)
    else:
        node = xmlwriter.sub(parent, tag, attrs, text)
    for child in children:
        with_writer(child, node)
    return node


@settings(max_examples=300, deadline=None)
@given(trees())
def test_same_bytes_as_lxml(spec):
    expected = etree.tostring(with_lxml(spec), xml_declaration=True, encoding="UTF-8")
    assert xmlwriter.tostring(with_writer(spec)) == expected


def test_prebuilt_fragments_are_written_as_they_are():
    root = xmlwriter.Node("a", {})
    root.children.append(xmlwriter.leaf("b", {"v": 'x"<'}, "t&"))
    assert xmlwriter.tostring(root).endswith(b'<a><b v="x&quot;&lt;">t&amp;</b></a>')


@pytest.mark.parametrize("bad", ["\x01", "a\x00b", "\x1f", "\ufffe"])
def test_text_xml_cannot_hold_is_refused_like_lxml_refuses_it(bad):
    with pytest.raises(ValueError):
        etree.Element("x").text = bad
    with pytest.raises(xmlwriter.InvalidXmlText):
        xmlwriter.leaf("x", {}, bad)
    with pytest.raises(xmlwriter.InvalidXmlText):
        xmlwriter.leaf("x", {"a": bad})
