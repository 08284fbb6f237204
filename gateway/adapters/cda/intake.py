"""CDA intake: parse → validate → describe. Pure; the pipeline's step for a CDA submission."""

from __future__ import annotations

from gateway.adapters.cda import metadata, parser
from gateway.adapters.cda.parser import CdaDocument, CdaLimits
from gateway.document import Document
from gateway.findings import Finding, Report
from gateway.outcome import Rejected, RejectionKind
from gateway.validators.cda import CdaValidator


def read(
    raw: bytes, limits: CdaLimits, validator: CdaValidator
) -> tuple[Document | Rejected, CdaDocument | None]:
    """A valid CDA as a Document, or Rejected with every finding; also the parsed document."""
    doc, findings = parser.parse(raw, limits)
    if doc is None:
        return Rejected(Report.of(findings), RejectionKind.INVALID, "cda"), None
    return describe(doc, findings + validator.validate(doc)), doc


def describe(doc: CdaDocument, findings: list[Finding]) -> Document | Rejected:
    report = Report.of(findings)
    if not report.valid:
        return Rejected(report, RejectionKind.INVALID, "cda")
    return Document(
        payload=doc.standalone_bytes(),
        content_type=metadata.CONTENT_TYPE,
        source_kind="cda",
        fields=metadata.extract(doc),
        warnings=report.warnings,
    )
