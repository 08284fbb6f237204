"""Rule templates with the same body written once (gateway.conformance.shared_bodies): the
rewritten stylesheet gives what the original gave, and bodies that could see a difference
are left where they are."""

from types import SimpleNamespace

import pytest
from lxml import etree
from saxonche import PySaxonApiError

from gateway.conformance import documents, schematron, shared_bodies, visit

XSL = "http://www.w3.org/1999/XSL/Transform"
# What a rule body of the ISO skeleton reads: its context node, a variable, the context
# position and size, current(), a location in another mode, and the current mode (#current).
BODY = """
    <xsl:variable name="v" select="@v"/>
    <xsl:choose>
      <xsl:when test="$v castable as xs:integer"/>
      <xsl:otherwise>
        <svrl:failed-assert at="{position()} of {last()}" node="{name(current())}">
          <xsl:attribute name="location">
            <xsl:apply-templates select="." mode="path"/>
          </xsl:attribute>
        </svrl:failed-assert>
      </xsl:otherwise>
    </xsl:choose>
    <xsl:apply-templates select="z" mode="#current"/>"""
OTHER = '<svrl:other node="{name()}"/>'
OWN_PREFIX = '<svrl:prefixed x="{exists(self::x:e)}"/>'
STYLESHEET = f"""<xsl:stylesheet version="3.0" xmlns:xsl="{XSL}"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:svrl="http://purl.oclc.org/dsdl/svrl">
  <xsl:template match="/"><svrl:out><xsl:apply-templates select="//(a|b|c|d|e|f|g|h|p|q)"
    mode="M"/></svrl:out></xsl:template>
  <xsl:template match="a" priority="5" mode="M">{BODY}</xsl:template>
  <xsl:template match="b" priority="4" mode="M">{BODY}</xsl:template>
  <xsl:template match="z" mode="M">{BODY}</xsl:template>
  <xsl:template match="c" priority="3" mode="M">{OTHER}</xsl:template>
  <xsl:template match="d" mode="M" as="element()*">{BODY}</xsl:template>
  <xsl:template match="e" mode="M" xmlns:x="urn:x">{OWN_PREFIX}</xsl:template>
  <xsl:template match="h" mode="M" xmlns:x="urn:x">{OWN_PREFIX}</xsl:template>
  <xsl:template match="f" priority="2" mode="M"><xsl:next-match/></xsl:template>
  <xsl:template match="g" priority="2" mode="M"><xsl:next-match/></xsl:template>
  <xsl:template match="p" mode="M"><xsl:param name="n" select="1"/>{OTHER}</xsl:template>
  <xsl:template match="q" mode="M"><xsl:param name="n" select="1"/>{OTHER}</xsl:template>
  <xsl:template match="*" priority="-1" mode="M"><svrl:fallback node="{{name()}}"/></xsl:template>
  <xsl:template match="*" mode="path">/<xsl:value-of select="name()"/>[<xsl:value-of
    select="count(preceding-sibling::*[name() = name(current())]) + 1"/>]</xsl:template>
</xsl:stylesheet>"""
DOCUMENT = (
    '<r><a v="1"/><b v="x"><z v="y"/></b><c/><a v="two"><z v="3"/></a><d v="d"/><e/><h/>'
    '<f/><g/><p/><q/><b v="4"/></r>'
)


def run(xslt: str) -> str:
    executable = (
        schematron.processor().new_xslt30_processor().compile_stylesheet(stylesheet_text=xslt)
    )
    return executable.transform_to_string(xdm_node=schematron.source(DOCUMENT))


def calls(xslt: str) -> dict[str, list[str]]:
    """The match of every rule template that calls a shared body, by body name."""
    root = etree.fromstring(xslt.encode())
    out: dict[str, list[str]] = {}
    for template in root.iterchildren(f"{{{XSL}}}template"):
        for call in template.iterchildren(f"{{{XSL}}}call-template"):
            out.setdefault(call.get("name"), []).append(template.get("match"))
    return out


def test_a_shared_body_is_written_once_and_gives_the_same_output():
    shared = shared_bodies.rewrite(STYLESHEET)
    assert calls(shared) == {f"{shared_bodies.NAME}0": ["a", "b", "z"]}
    assert shared.count("castable as xs:integer") == STYLESHEET.count("castable") - 2
    original = run(STYLESHEET)
    assert run(shared) == original
    # The output names what the bodies read: positions, current(), locations, #current.
    assert 'at="2 of 12" node="b" location="/b[1]"' in original
    assert 'at="4 of 12" node="a" location="/a[2]"' in original
    assert 'at="1 of 1" node="z" location="/z[1]"' in original  # reached through #current
    assert original.count("<svrl:fallback") == 2  # f and g: next-match still reaches it


def test_bodies_that_could_see_a_difference_stay_in_their_template():
    """An ``as`` attribute, namespaces of its own (their prefixes would not reach a named
    template), next-match, parameters: not shared."""
    root = etree.fromstring(shared_bodies.rewrite(STYLESHEET).encode())
    left = {
        t.get("match"): t
        for t in root.iterchildren(f"{{{XSL}}}template")
        if t.get("match") in ("d", "e", "f", "g", "h", "p", "q")
    }
    assert all(t.find(f"{{{XSL}}}call-template") is None for t in left.values())
    assert left["d"].find(f"{{{XSL}}}choose") is not None


def test_a_stylesheet_without_shared_bodies_is_left_as_it_was():
    once = STYLESHEET.replace(f'match="b" priority="4" mode="M">{BODY}', 'match="b" mode="M">')
    once = once.replace(f'match="z" mode="M">{BODY}', 'match="z" mode="M">')
    assert shared_bodies.rewrite(once) is once


@pytest.mark.parametrize("failure", ["does not compile", "does not parse", "raises"])
def test_a_rewrite_that_fails_costs_only_itself(tmp_path, monkeypatch, failure):
    """The stylesheet from the rewrites before it is compiled instead."""
    sch = SimpleNamespace(path=tmp_path / "rules.sch", layer="test")

    def broken(text: str) -> str:
        if failure == "does not parse":
            raise etree.XMLSyntaxError("broken", None, 1, 1)
        if failure == "raises":  # a bug in a rewrite: the layer must not be lost to it
            raise AttributeError("'NoneType' object has no attribute 'tag'")
        return text.replace("<xsl:choose>", "<xsl:choose><xsl:unknown/>", 1)

    before = documents.rewrite(visit.rewrite(STYLESHEET), tmp_path)
    if failure == "does not compile":
        with pytest.raises(PySaxonApiError):
            run(broken(before))
    monkeypatch.setattr(shared_bodies, "rewrite", broken)
    executable, text = schematron._first_compiling(STYLESHEET, sch)
    assert text == before
    assert executable.transform_to_string(xdm_node=schematron.source(DOCUMENT)) == run(STYLESHEET)
