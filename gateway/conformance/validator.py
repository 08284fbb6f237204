"""The pack tier as a CdaValidator layer: XSD, profile schematrons, then the document model.

Runs every layer of the national tool that the pack allows. A layer that cannot run (its
compilation or execution fails, or its model rules are absent) gives a warning naming it,
never a rejection: a broken pack must not reject a document, and must not crash the gateway.
The built-in tier runs beside this one, so the INS key is always checked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway.adapters.cda.parser import CdaDocument
from gateway.adapters.cda.xpath import HL7
from gateway.conformance import pack_xml, schematron
from gateway.conformance.pack import Pack, Schematron
from gateway.findings import Finding, Report, error, warning
from gateway.validators.cda_schema import withhold_values

XSD_LAYER = "pack:xsd"


def unavailable(rule: str, message: str, layer: str) -> Finding:
    return warning(rule, message, layer=layer, fix="repair or update the conformance pack")


@dataclass
class PackValidator:
    """Callable layer for CdaValidator.layers; compiles each schematron on first use, or at
    start with warm_up(). ``cache_dir`` keeps the generated stylesheets across processes."""

    pack: Pack
    cache_dir: Path | None = None
    _schema: etree.XMLSchema | None = field(default=None, init=False, repr=False)
    _schema_error: str | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __call__(self, doc: CdaDocument) -> list[Finding]:
        # Saxon reads text: the ClinicalDocument re-serialised, whatever encoding it came in.
        standalone = schematron.source(etree.tostring(doc.root, encoding="unicode"))
        findings = self.xsd(doc)
        for sch in self.pack.profiles:
            findings += self._run(sch, standalone, doc.root)
        findings += self.model(doc, standalone)
        return findings

    def warm_up(self) -> list[Finding]:
        """Compile every profile layer now (at start) rather than on the first document."""
        problems = []
        for sch in self.pack.profiles:
            try:
                schematron.compiled(self.pack, sch, self.cache_dir)
            except schematron.CompileError as exc:
                problems.append(
                    unavailable("pack.layer-unavailable", str(exc), f"pack:{sch.layer}")
                )
        return problems

    def xsd(self, doc: CdaDocument) -> list[Finding]:
        schema = self._load_schema()
        if schema is None:
            return [unavailable("pack.layer-unavailable", self._schema_error or "", XSD_LAYER)]
        root = etree.fromstring(doc.standalone_bytes()) if doc.wrapped else doc.root
        with self._lock:
            valid = schema.validate(root)
            log = list(schema.error_log)
        if valid:
            return []
        return [
            error(
                "pack.xsd",
                withhold_values(e.message),  # libxml2 quotes the refused value
                layer=XSD_LAYER,
                line=e.line if not doc.wrapped else None,
                location=e.path or "",
                hl7_code=102,
            )
            for e in log
        ]

    def _load_schema(self) -> etree.XMLSchema | None:
        with self._lock:
            if self._schema is None and self._schema_error is None:
                if self.pack.xsd is None:
                    self._schema_error = "the pack has no infrastructure/cda/CDA_extended.xsd"
                else:
                    try:
                        self._schema = etree.XMLSchema(pack_xml.parse(self.pack.xsd))
                    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
                        self._schema_error = f"CDA schema unusable: {exc}"
            return self._schema

    def model(self, doc: CdaDocument, standalone: object) -> list[Finding]:
        template_ids = [
            (t.get("root"), t.get("extension"))
            for t in doc.root.iterchildren(f"{{{HL7}}}templateId")
        ]
        chosen = self.pack.model_for(template_ids)
        if chosen is None:
            return [
                warning(
                    "pack.model-unknown",
                    "no document-model schematron of the pack matches the document's templateIds: "
                    "model rules not run",
                    layer="pack:model",
                )
            ]
        if chosen.version in {ext for _, ext in template_ids if ext}:
            return self._model_run(chosen, standalone, doc.root)
        # No version named: the document conforms if it conforms to one published version.
        versions = sorted(
            (m for m in self.pack.models if m.model_roots == chosen.model_roots),
            key=lambda m: m.version or "",
            reverse=True,
        )
        runnable = [m for m in versions if not any(r.kind == "include" for r in m.missing)]
        if not runnable:
            return self._model_run(versions[0], standalone, doc.root)
        first = None
        for version in runnable:  # newest first; the first it conforms to settles it
            findings = self._model_run(version, standalone, doc.root)
            if Report.of(findings).valid:
                return findings
            first = findings if first is None else first
        return first

    def _model_run(
        self, sch: Schematron, standalone: object, root: etree._Element
    ) -> list[Finding]:
        missing = [r.href for r in sch.missing if r.kind == "include"]
        if missing:
            return [
                unavailable(
                    "pack.model-unavailable",
                    f"model rules unavailable: {sch.path.name} includes {len(missing)} file(s) "
                    f"the pack lacks (first: {missing[0]}); the document is neither valid nor "
                    "invalid for this model",
                    f"pack:{sch.layer}",
                )
            ]
        return self._run(sch, standalone, root)

    def _run(self, sch: Schematron, standalone: object, root: etree._Element) -> list[Finding]:
        layer = f"pack:{sch.layer}"
        try:
            unit = schematron.compiled(self.pack, sch, self.cache_dir)
        except schematron.CompileError as exc:
            return [unavailable("pack.layer-unavailable", f"layer cannot run: {exc}", layer)]
        try:
            findings = schematron.run(unit, standalone, root)
        except Exception as exc:  # a broken pack never crashes validation
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            return [unavailable("pack.layer-failed", f"layer stopped: {reason}", layer)]
        notes = (
            [
                unavailable(
                    "pack.rules-unavailable",
                    f"{sch.path.name}: {len(sch.missing)} referenced file(s) missing from the pack "
                    f"(first: {sch.missing[0].href}); rules using them did not run",
                    layer,
                )
            ]
            if sch.missing
            else []
        )
        return findings + notes
