"""Documents a pack stylesheet reads, parsed once per process (gateway.conformance.documents):
the rewritten stylesheet answers as the original one did, from what it holds."""

from pathlib import Path

import pytest
from saxonche import PySaxonApiError

from gateway.conformance import documents, schematron

STYLESHEET = """<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:variable name="terms" select="'terms/'"/>
  <xsl:variable name="vs" select="'vs.xml'"/>
  <xsl:variable name="which" select="'beta'"/>
  <xsl:template match="/">
    <r>
      <held><xsl:value-of select="doc('vs.xml')//code/@v"/></held>
      <variable><xsl:value-of select="count(document($vs)//code)"/></variable>
      <lookup><xsl:value-of select="doc('vs.xml')//name[text() = string($which)]/@n"/></lookup>
      <first><xsl:value-of select="doc('vs.xml')//name[text() = string($which)][1]/@n"/></first>
      <known><xsl:value-of select="doc(concat($terms, 'a', '.xml'))//term"/></known>
      <large><xsl:value-of select="doc(concat($terms, 'big', '.xml'))//term"/></large>
      <a><xsl:value-of select="doc-available(concat($terms, 'a.xml'))"/></a>
      <big><xsl:value-of select="doc-available(concat($terms, 'big.xml'))"/></big>
      <absent><xsl:value-of select="doc-available(concat($terms, 'absent.xml'))"/></absent>
      <text><xsl:value-of select="doc-available(concat($terms, 'notes.txt'))"/></text>
      <encoded><xsl:value-of select="doc-available(concat($terms, '%61.xml'))"/></encoded>
      <quoted><xsl:value-of select="'doc(''vs.xml'')'"/></quoted>
    </r>
  </xsl:template>
</xsl:stylesheet>"""


VALUE_SET = (
    '<vs><code v="A"/><code v="B"/><name n="1">alpha</name><name n="2">beta</name>'
    '<g><name n="3">beta</name></g></vs>'
)


@pytest.fixture
def base(tmp_path) -> Path:
    (tmp_path / "vs.xml").write_text(VALUE_SET)
    (tmp_path / "terms").mkdir()
    (tmp_path / "terms/a.xml").write_text("<t><term>alpha</term></t>")
    (tmp_path / "terms/big.xml").write_text("<t><term>a larger term</term></t>")
    (tmp_path / "terms/notes.txt").write_text("not XML")
    return tmp_path


def run(xslt: str, base: Path) -> str:
    proc = schematron.processor().new_xslt30_processor()
    proc.set_cwd(str(base))
    executable = proc.compile_stylesheet(stylesheet_text=xslt)
    documents.bind(executable, xslt, base, schematron.processor())
    return executable.transform_to_string(xdm_node=schematron.source("<doc/>"))


def test_the_rewritten_stylesheet_answers_as_the_original(base, monkeypatch):
    monkeypatch.setattr(documents, "MAX_BYTES", len(VALUE_SET) + 25 + 10)  # not big.xml (33)
    held = documents.rewrite(STYLESHEET, base)
    assert documents.wanted_in(held) == documents.Wanted(files={"vs.xml"}, folders={"terms/"})
    assert run(held, base) == run(STYLESHEET, base)
    assert "<held>A B</held><variable>2</variable>" in run(held, base)
    assert "<lookup>2 3</lookup><first>2 3</first><known>alpha</known>" in run(held, base)
    assert "key('passerelle-text-1', string($which), " in held  # the lookup, by an xsl:key
    assert held.count("key('passerelle-text-1'") == 1  # not the one a [1] follows
    assert "<a>true</a><big>true</big><absent>false</absent><text>false</text>" in run(held, base)
    # a path the folder's listing cannot answer for (%61 is the a of a.xml): asked of Saxon
    assert "<encoded>true</encoded>" in run(held, base)
    assert "<quoted>doc('vs.xml')</quoted>" in run(held, base)


def test_what_is_held_is_read_from_memory_and_the_rest_from_disk(base, monkeypatch):
    monkeypatch.setattr(documents, "MAX_BYTES", len(VALUE_SET) + 25 + 10)
    held = documents.rewrite(STYLESHEET, base)
    proc = schematron.processor().new_xslt30_processor()
    proc.set_cwd(str(base))
    executable = proc.compile_stylesheet(stylesheet_text=held)
    held_bytes = documents.bind(executable, held, base, schematron.processor())
    assert held_bytes == len(VALUE_SET) + len("<t><term>alpha</term></t>")
    (base / "vs.xml").write_text('<vs><code v="changed"/><name n="9">beta</name></vs>')
    (base / "terms/a.xml").unlink()
    (base / "terms/big.xml").write_text("<t><term>from disk</term></t>")
    out = executable.transform_to_string(xdm_node=schematron.source("<doc/>"))
    assert "<held>A B</held>" in out and "<lookup>2 3</lookup>" in out
    assert "<known>alpha</known>" in out
    assert "<large>from disk</large>" in out


def test_calls_left_to_saxon(base):
    """Missing files, two arguments, nodes and look-alike names keep Saxon's own function."""
    xslt = STYLESHEET.replace(
        "<quoted>",
        "<missing><xsl:value-of select=\"exists(doc('absent.xml'))\"/></missing>"
        "<two><xsl:value-of select=\"count(document('vs.xml', /))\"/></two>"
        '<node><xsl:value-of select="count(doc(/doc/@href))"/></node>'
        '<quoted><xsl:value-of select="my-doc(1)"/></quoted><quoted>',
    )
    held = documents.rewrite(xslt, base)
    assert "exists(doc('absent.xml'))" in held
    assert "document('vs.xml', /)" in held and "doc(/doc/@href)" in held
    assert "my-doc(1)" in held


def test_a_stylesheet_reading_no_document_is_unchanged(base):
    xslt = STYLESHEET.replace("doc", "concat")
    assert documents.rewrite(xslt, base) == xslt
    assert documents.wanted_in(xslt) == documents.Wanted()


def test_a_missing_document_still_fails_the_run(base):
    held = documents.rewrite(STYLESHEET, base)
    (base / "terms/a.xml").unlink()  # after the rewrite, before the stylesheet is bound
    with pytest.raises(PySaxonApiError, match=r"a\.xml"):
        run(held, base)
