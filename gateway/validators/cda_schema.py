"""CDA R2 structural schema (schemas/cda/) as a built-in layer: element order, cardinality,
data types of the header, body shape.

The schema is written here from the CDA R2 specification (docs/cda-validation.md says which
parts are strict and which lax). It is compiled once per process, on first use, from local
files only: no network, no entity resolution. Schema errors become ``cda.schema`` findings
located at the element libxml2 names, as the same readable XPath the header rules use.

libxml2 quotes the offending value in its messages (``The value '1984-12-05' is not accepted
by the pattern …``): a birth date, a name, an INS. Findings travel to senders, to the
`rejected` queue and to the operators' tracking pages, so the value is replaced by a
placeholder (``withheld``); the rule, the element, the attribute and what the schema expects
stay, which is what the sender needs to fix it (they have the document).
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

from lxml import etree

from gateway.adapters.cda.parser import CdaDocument
from gateway.adapters.cda.xpath import HL7, path_of
from gateway.findings import Finding, error

RULE = "cda.schema"
LAYER = "cda-schema"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "cda" / "cda-r2.xsd"
MAX_FINDINGS = 50  # a document that is not CDA at all would otherwise list every element

_lock = threading.Lock()  # an XMLSchema keeps its error log on itself: one validation at a time
_STEP = re.compile(r"^(?:[\w.-]+:)?(\*|[\w.-]+)(?:\[(\d+)\])?$")

WITHHELD = "'(value withheld)'"
# Where libxml2's schema messages quote a value of the document. Each quoted value runs, greedily,
# up to a phrase of libxml2's own followed by schema text, so a value holding quotes or that
# phrase is withheld whole. Element and attribute names, types, patterns and enumerations are
# the schema's and stay.
_LIBXML2_AFTER_VALUE = (
    "has a length of",
    "is not an element of the set",
    "is not accepted by the pattern",
    "is less than",
    "is greater than",
    "must be greater than",
    "must be less than",
    "has more digits",
    "has more fractional digits",
    "is not facet-valid",
    "does not match the fixed value",
    "of the xsi:type attribute",
    "does not resolve to",
)
_FACET_VALUE = re.compile(
    r"\b((?:QName |actual |initial )?[Vv]alue )'.*'(?= (?:"
    + "|".join(map(re.escape, _LIBXML2_AFTER_VALUE))
    + "))",
    re.DOTALL,
)
_TYPE_VALUE = re.compile(r"(?<=: )'.*'(?= is not a valid value of the )", re.DOTALL)
_KEY_SEQUENCE = re.compile(r"key-sequence \[.*\]", re.DOTALL)


_compiling = threading.Lock()


def schema() -> etree.XMLSchema:
    """The compiled CDA R2 schema (includes resolved beside it, from disk only).

    Compiled by one thread: two threads building it at once (the first documents of a gateway
    running its pipeline in threads) got XMLSchemaParseError, and a schema that failed every
    later validation was cached."""
    with _compiling:
        return _compiled()


@functools.cache
def _compiled() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), parser))


def validate(doc: CdaDocument) -> list[Finding]:
    compiled = schema()
    with _lock:
        if compiled.validate(doc.root):
            return []
        log = list(compiled.error_log)
    return [_finding(doc.root, entry) for entry in log[:MAX_FINDINGS]]


def _finding(root: etree._Element, entry) -> Finding:
    el = _element_at(root, entry.path or "")
    message = withhold_values(entry.message.replace(f"{{{HL7}}}", ""))
    return error(
        RULE,
        f"CDA R2 schema: {message}",
        layer=LAYER,
        location=path_of(el) if el is not None else _readable(entry.path or ""),
        line=el.sourceline if el is not None else entry.line or None,
        fix="follow the CDA R2 element order, cardinalities and data types",
        hl7_code=101 if "Missing child" in message else 102,
    )


def withhold_values(message: str) -> str:
    """libxml2's message with every value quoted from the document replaced by WITHHELD."""
    message = _FACET_VALUE.sub(rf"\1{WITHHELD}", message)
    message = _TYPE_VALUE.sub(WITHHELD, message)
    return _KEY_SEQUENCE.sub(f"key-sequence [{WITHHELD}]", message)


def _element_at(root: etree._Element, path: str) -> etree._Element | None:
    """Follow libxml2's error path (``/c:ClinicalDocument/c:author[2]`` or ``/*/*[19]``) down
    from the validated element, which the path's first step names."""
    steps = [s for s in path.split("/") if s]
    if not steps:
        return None
    el = root
    for step in steps[1:]:
        m = _STEP.match(step)
        if m is None:
            return None
        name, index = m.group(1), int(m.group(2) or 1)
        children = [
            c
            for c in el
            if isinstance(c.tag, str) and (name == "*" or etree.QName(c).localname == name)
        ]
        if len(children) < index:
            return None
        el = children[index - 1]
    return el


def _readable(path: str) -> str:
    return re.sub(r"(?<=/)[\w.-]+:", "", path)
