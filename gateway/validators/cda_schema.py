"""CDA R2 structural schema (schemas/cda/) as a built-in layer: element order, cardinality,
data types of the header, body shape.

The schema is written here from the CDA R2 specification (docs/cda-validation.md says which
parts are strict and which lax). It is compiled once per process, on first use, from local
files only: no network, no entity resolution. Schema errors become ``cda.schema`` findings
located at the element libxml2 names, as the same readable XPath the header rules use.
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
    message = entry.message.replace(f"{{{HL7}}}", "")
    return error(
        RULE,
        f"CDA R2 schema: {message}",
        layer=LAYER,
        location=path_of(el) if el is not None else _readable(entry.path or ""),
        line=el.sourceline if el is not None else entry.line or None,
        fix="follow the CDA R2 element order, cardinalities and data types",
        hl7_code=101 if "Missing child" in message else 102,
    )


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
