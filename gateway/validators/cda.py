"""The CDA validator: every tier that applies to a parsed CDA document, one report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.adapters.cda.parser import CdaDocument
from gateway.findings import Finding
from gateway.validators import cda_header, cda_models, cda_schema

Rule = Callable[[CdaDocument], list[Finding]]

BUILT_IN: tuple[Rule, ...] = (cda_schema.validate, cda_header.validate, cda_models.validate)


@dataclass(frozen=True)
class CdaValidator:
    """Runs the built-in tier, then any further layers (the conformance pack) in order."""

    layers: Sequence[Rule] = field(default_factory=lambda: BUILT_IN)

    def validate(self, doc: CdaDocument) -> list[Finding]:
        findings: list[Finding] = []
        for layer in self.layers:
            findings.extend(layer(doc))
        return findings
