"""Rewriting a compiled ISO Schematron stylesheet so it visits only the nodes its rules match.

The ISO skeleton (``iso_svrl_for_xslt2.xsl``) checks each pattern by walking the whole document
in a mode of its own: ``apply-templates select="/"``, then every rule template and the mode's
fallback template recurse into ``*``. The pack's profiles have hundreds of patterns (IHE: 236),
so a 130 KB document is walked hundreds of times, twice: each ``svrl:active-pattern`` also runs
a bare ``apply-templates`` in the default mode, which only strips text. That walking, not the
asserts, is what a validation costs.

The walk visits the document node and every element once, in document order, and runs the
highest-priority template whose pattern matches. Selecting, instead, the nodes that match one
of the mode's rule patterns (turned into path expressions), restricted to elements and the
document node, in document order, and applying templates to them without recursion, runs the
same templates on the same nodes in the same order: the same asserts fail, in the same order
(the SVRL is the same but for what nothing reads: ``svrl:fired-rule`` and indentation are no
longer written). Patterns of the common shape ``X[cda:templateId/@root='oid']`` are looked up
through an ``xsl:key`` built once per document instead of scanning for each pattern, and
patterns starting with the same ``//A[p]`` step (structurationMinimale's hundreds of
``//hl7:ClinicalDocument[...]/...``) share one evaluation of that step.

A mode is rewritten only when it has exactly the skeleton's shape; anything else (a pattern
using ``current()``, a rule that does not end with the recursion, an unexpected fallback) keeps
the walk. The bare default-mode traversals are dropped only when the default mode has no
templates but the skeleton's own (``/`` and the text stripper), so they can output nothing.
"""

from __future__ import annotations

import re

from lxml import etree

from gateway.conformance import pack_xml
from gateway.conformance.xpath_text import top_level

XSL = "http://www.w3.org/1999/XSL/Transform"
SVRL = "http://purl.oclc.org/dsdl/svrl"
HL7 = "urn:hl7-org:v3"
KEY = "passerelle-template-root"
VERSION = 4  # part of the stored stylesheets' key: raise it when the rewrite changes
_KEYED = re.compile(
    r"^(?P<name>\*|[\w.-]+:[\w.-]+)"
    r"\[(?P<pfx>[\w.-]+):templateId"
    r"(?:/@root\s*=\s*(?P<q>['\"])(?P<lit>[^'\"]*)(?P=q)"
    r"|\[@root\s*=\s*(?P<q2>['\"])(?P<lit2>[^'\"]*)(?P=q2)\])\]"
    r"(?P<rest>/.*)?$",
    re.DOTALL,
)
_UNSAFE = ("current()", "document-node(", "position()", "last()")
# What the skeleton's walk recurses into (it differs between skeleton versions), and the kinds
# of node that walk therefore visits (the document node, then its descendants of those kinds).
_WALKS = {
    "*": "element()",
    "*|comment()|processing-instruction()": "element() or . instance of comment() "
    "or . instance of processing-instruction()",
}


def rewrite(xslt: str) -> str:
    """The stylesheet text with its pattern walks replaced where that is provably equivalent."""
    root = pack_xml.from_text(xslt)
    templates = [t for t in root.iter(f"{{{XSL}}}template") if t.get("match") is not None]
    _drop_default_walks(root, templates)
    _quiet(root)
    by_mode: dict[str, list[etree._Element]] = {}
    for t in templates:
        if t.get("mode"):
            by_mode.setdefault(t.get("mode"), []).append(t)
    keyed = False
    for start in list(root.iter(f"{{{XSL}}}apply-templates")):
        mode = start.get("mode")
        if start.get("select") != "/" or mode not in by_mode:
            continue
        selection = _select(by_mode[mode], mode)
        if selection is None:
            continue
        expression, uses_key = selection
        start.set("select", expression)
        keyed |= uses_key
        for t in by_mode[mode]:
            if (recursion := _recursion(t, mode)) is not None:
                t.remove(recursion)
    if keyed:
        key = etree.Element(f"{{{XSL}}}key", name=KEY, match="*", use=f"Q{{{HL7}}}templateId/@root")
        root.insert(0, key)
    return etree.tostring(root, encoding="unicode")


def _quiet(root: etree._Element) -> None:
    """Not written, as nothing reads them: ``svrl:fired-rule`` (one per node a rule matched,
    245 on a CR-BIO for structurationMinimale alone; findings come from failed asserts and
    successful reports) and the output's indentation."""
    for fired in list(root.iter(f"{{{SVRL}}}fired-rule")):
        parent = fired.getparent()
        if parent is None or parent.tag != f"{{{XSL}}}template" or len(fired):
            continue
        previous = fired.getprevious()
        if fired.tail and not fired.tail.isspace():
            if previous is not None:
                previous.tail = (previous.tail or "") + fired.tail
            else:
                parent.text = (parent.text or "") + fired.tail
        parent.remove(fired)
    for output in root.iterchildren(f"{{{XSL}}}output"):
        output.set("indent", "no")


def _drop_default_walks(root: etree._Element, templates: list[etree._Element]) -> None:
    if root.get("default-mode") or any(
        not t.get("mode") and t.get("match") not in ("/", "text()") for t in templates
    ):
        return
    for pattern in root.iter(f"{{{SVRL}}}active-pattern"):
        for walk in pattern.findall(f"{{{XSL}}}apply-templates"):
            if not walk.attrib and len(walk) == 0:
                pattern.remove(walk)


def _recursion(template: etree._Element, mode: str) -> etree._Element | None:
    """The skeleton's ``apply-templates select="*"`` in ``mode``, when it is the last step."""
    last = template[-1] if len(template) else None
    if (
        last is not None
        and last.tag == f"{{{XSL}}}apply-templates"
        and last.get("select") in _WALKS
        and last.get("mode") == mode
        and len(last) == 0
    ):
        return last
    return None


def _select(templates: list[etree._Element], mode: str) -> tuple[str, bool] | None:
    """The expression selecting what the walk of ``mode`` would run a rule on, or None."""
    fallbacks = {t.get("priority"): t for t in templates if t.get("priority") in ("-1", "-2")}
    rules = [t for t in templates if t.get("priority") not in ("-1", "-2")]
    text_strip, walk = fallbacks.get("-1"), fallbacks.get("-2")
    if (
        len(fallbacks) != 2
        or len(templates) != len(rules) + 2
        or text_strip.get("match") != "text()"
        or len(text_strip) != 0
        or walk.get("match") != "@*|node()"
        or len(walk) != 1
        or _recursion(walk, mode) is None
        or not rules
        or any(_recursion(t, mode) is None for t in rules)
    ):
        return None
    parts, uses_key, descending = [], False, {}
    for t in rules:
        for branch in _branches(t.get("match")):
            converted = _expression(branch, t.nsmap)
            if converted is None:
                return None
            first_step = _first_step(branch.strip())
            if not converted[1] and first_step is not None:
                descending.setdefault(first_step[0], []).append(first_step[1])
                continue
            parts.append(converted[0])
            uses_key |= converted[1]
    parts += [_shared_start(first, rests) for first, rests in descending.items()]
    walked = {_recursion(t, mode).get("select") for t in [walk, *rules]}
    if len(walked) != 1:
        return None
    kinds = _WALKS[walked.pop()]
    union = " | ".join(parts)
    return f"({union})[. instance of document-node() or . instance of {kinds}]", uses_key


def _expression(branch: str, nsmap: dict) -> tuple[str, bool] | None:
    """Nodes matching the pattern ``branch``, as an expression evaluated from the document."""
    branch = branch.strip()
    if not branch or any(u in branch for u in _UNSAFE):
        return None
    m = _KEYED.match(branch)
    if m and nsmap.get(m["pfx"]) == HL7:
        literal = m["lit"] if m["lit"] is not None else m["lit2"]
        quote = m["q"] or m["q2"]
        found = f"key('{KEY}', {quote}{literal}{quote})"
        if m["name"] != "*":
            found += f"[self::{m['name']}]"
        return found + (m["rest"] or ""), True
    if branch.startswith("/"):
        return f"({branch})", False
    return f"//({branch})", False


def _first_step(branch: str) -> tuple[str, str] | None:
    """``//A[p]/rest`` as (``A[p]``, ``/rest``); ``//A[p]`` as (``A[p]``, ``""``); else None."""
    if not branch.startswith("//") or branch.startswith("///"):
        return None
    for i in top_level(branch, 2):
        if branch[i] == "/":
            return (branch[2:i], branch[i:]) if i > 2 else None
        if branch[i] == "|":
            return None
    return (branch[2:], "") if len(branch) > 2 else None


def _shared_start(first: str, rests: list[str]) -> str:
    """Branches starting with the same ``//A[p]`` step, that step evaluated once:
    ``//A[p]/(. | B | .//C)`` selects what ``//A[p] | //A[p]/B | //A[p]//C`` does."""
    if rests == [""]:
        return f"(//{first})"
    relative = [
        "." if not r else ("." + r if r.startswith("//") else r[1:]) for r in dict.fromkeys(rests)
    ]
    return f"(//{first}/({' | '.join(relative)}))"


def _branches(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern (``a | b[x|y]`` → ``a``, ``b[x|y]``)."""
    out, last = [], 0
    for i in top_level(pattern):
        if pattern[i] == "|":
            out.append(pattern[last:i])
            last = i + 1
    out.append(pattern[last:])
    return out
