"""Rule templates with the same body: the body written once, as a named template each calls.

The pack's schematrons are generated (ART-DECOR): the same datatype checks are repeated in
every rule whose context has that datatype. structurationMinimale's 770 rule templates have
345 distinct bodies; one body of 33 KB (the ST checks of an address part or a name part) is
the body of 336 of them. Saxon compiles each copy on its own: 10 MB of stylesheet, hundreds of
MB of compiled expressions per process, ~9 s to compile, and a validation that touches
scattered copies of the same code.

rewrite() moves each body that two or more rule templates share into one named template and
leaves in each rule template an ``xsl:call-template`` of it. A called template runs with the
caller's context item, position, size and current mode, and a template body sees nothing of
the template's match pattern, mode or priority, so the same instructions run on the same
nodes in the same order. What a body could see differently is left alone: a template with
parameters, with attributes beyond match, mode and priority (``xpath-default-namespace``,
``as``…), with namespaces of its own, or whose body uses ``xsl:next-match`` or
``xsl:apply-imports`` (a named template has no current template rule).
"""

from __future__ import annotations

from lxml import etree

from gateway.conformance import pack_xml

XSL = "http://www.w3.org/1999/XSL/Transform"
NAME = "passerelle-shared-body-"
VERSION = 1  # part of the stored stylesheets' key: raise it when the rewrite changes
_ATTRIBUTES = {"match", "mode", "priority"}
_CONTEXT_BOUND = (f"{{{XSL}}}next-match", f"{{{XSL}}}apply-imports", f"{{{XSL}}}param")


def rewrite(xslt: str) -> str:
    """The stylesheet text with every body shared by two or more rule templates written once."""
    root = pack_xml.from_text(xslt)
    groups: dict[str, list[etree._Element]] = {}
    for template in root.iterchildren(f"{{{XSL}}}template"):
        if (body := _body(template, root)) is not None:
            groups.setdefault(body, []).append(template)
    shared = [templates for templates in groups.values() if len(templates) > 1]
    for n, templates in enumerate(shared):
        name = f"{NAME}{n}"
        first = templates[0]
        named = etree.Element(f"{{{XSL}}}template", name=name)
        named.text = first.text
        named.extend(list(first))
        first.addprevious(named)
        for template in templates:
            for child in list(template):
                template.remove(child)
            template.text = None
            etree.SubElement(template, f"{{{XSL}}}call-template", name=name)
    return etree.tostring(root, encoding="unicode") if shared else xslt


def _body(template: etree._Element, root: etree._Element) -> str | None:
    """The body's text, when ``template`` is a rule template whose body may be shared."""
    if (
        template.get("match") is None
        or not set(template.attrib) <= _ATTRIBUTES
        or template.nsmap != root.nsmap
        or not len(template)
        or next(template.iter(*_CONTEXT_BOUND), None) is not None
    ):
        return None
    return (template.text or "") + "".join(
        etree.tostring(child, encoding="unicode") for child in template
    )
