"""The CDA parser refuses what could read files, reach the network or expand without bound."""

import pytest

from gateway.adapters.cda.parser import CdaLimits, parse
from tests.conftest import FIXTURES

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol3;</title></ClinicalDocument>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/cda.dtd">
<ClinicalDocument xmlns="urn:hl7-org:v3"/>"""


@pytest.mark.parametrize("raw", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "dtd"])
def test_doctypes_and_entities_are_refused_not_resolved(raw):
    doc, [finding] = parse(raw)
    assert doc is None
    assert finding.rule == "xml.doctype"


def test_size_limit():
    doc, [finding] = parse(b"<a/>" * 100, CdaLimits(max_bytes=100))
    assert doc is None and finding.rule == "xml.size"


def test_depth_limit():
    raw = (
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
        + b"<a>" * 60
        + b"</a>" * 60
        + b"</ClinicalDocument>"
    )
    doc, [finding] = parse(raw, CdaLimits(max_depth=50))
    assert doc is None and finding.rule == "xml.depth"


def test_not_well_formed_reports_the_line():
    doc, [finding] = parse(
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">\n<title>\n</ClinicalDocument>'
    )
    assert doc is None and finding.rule == "xml.well-formed" and finding.line == 3


def test_a_file_without_clinical_document_is_refused():
    doc, [finding] = parse(b"<html><body/></html>")
    assert doc is None and finding.rule == "cda.clinical-document"


@pytest.mark.parametrize("after", [b"", b"and some words<xsl:text>more</xsl:text>"])
def test_clinical_document_inside_an_xslt_wrapper_is_found(after):
    """Alone, it is the ClinicalDocument and nothing of the wrapper that follows it."""
    inner = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes().split(b"?>", 1)[1]
    wrapped = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        b'<xsl:template match="/">' + inner + after + b"</xsl:template></xsl:stylesheet>"
    )
    doc, findings = parse(wrapped)
    assert findings == [] and doc.wrapped
    alone = doc.standalone_bytes()
    standalone, again = parse(alone)
    assert again == [] and not standalone.wrapped
    assert standalone.root.tag == "{urn:hl7-org:v3}ClinicalDocument"
    assert alone.rstrip().endswith(b"</ClinicalDocument>")


def _nested(levels: int) -> bytes:
    """A ClinicalDocument whose deepest element is ``levels`` levels down (the root is 1)."""
    inner = levels - 1
    return (
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
        + b"<a>" * inner
        + b"</a>" * inner
        + b"</ClinicalDocument>"
    )


def test_depth_limit_is_exact():
    assert parse(_nested(50), CdaLimits(max_depth=50))[0] is not None
    doc, [finding] = parse(_nested(51), CdaLimits(max_depth=50))
    assert doc is None and finding.rule == "xml.depth"


UTF16_DOCTYPE = (
    '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE ClinicalDocument>\n'
    '<ClinicalDocument xmlns="urn:hl7-org:v3"/>'
).encode("utf-16")


def test_a_doctype_the_byte_scan_cannot_see_is_refused_all_the_same():
    """In UTF-16 the bytes of "<!DOCTYPE" are interleaved with NULs; the parsed tree tells."""
    assert b"<!DOCTYPE" not in UTF16_DOCTYPE
    doc, [finding] = parse(UTF16_DOCTYPE)
    assert doc is None and finding.rule == "xml.doctype"


@pytest.mark.parametrize(
    ("raw", "limits"),
    [
        (XXE, CdaLimits()),
        (UTF16_DOCTYPE, CdaLimits()),
        (b"<a/>" * 100, CdaLimits(max_bytes=100)),
        (b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<a>" * 60, CdaLimits()),
        (
            b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
            + b"<a>" * 60
            + b"</a>" * 60
            + b"</ClinicalDocument>",
            CdaLimits(max_depth=50),
        ),
        (b"<html><body/></html>", CdaLimits()),
    ],
    ids=["doctype", "utf16-doctype", "size", "not-well-formed", "depth", "not-cda"],
)
def test_every_refusal_says_how_to_fix_it(raw, limits):
    doc, [finding] = parse(raw, limits)
    assert doc is None and finding.fix and finding.is_error
