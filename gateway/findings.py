"""Findings: what validation says about a message, shared by every validator.

A finding names the rule that produced it, where in the input it applies, how serious it is,
and what to do about it. Validators return lists of findings; they never raise for content.
The same shape becomes an HTTP validation report, a set of HL7 ERR segments, and a line of
`gateway validate` output.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, fields


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation about the input.

    rule      stable identifier, e.g. ``cda.header.realmCode`` or a pack assert id
    severity  errors reject the message; warnings travel with it in the envelope
    location  XPath for XML (``/ClinicalDocument/recordTarget[1]``), HL7 path for v2
              (``PID-3[1].4.2``), empty when the finding is about the whole input
    message   what is wrong, for a human, without patient data
    layer     which validator produced it (``xml``, ``cda-schema``, ``cda-header``, ``pack:…``)
    line      source line when known
    fix       how to correct it, when the rule knows
    hl7_code  HL7 table 0357 error code for ERR-3 (101 required field missing, 102 data type
              error, 103 table value not found, 200 unsupported message type, 207 application
              internal error, …)
    """

    rule: str
    severity: Severity
    message: str
    location: str = ""
    layer: str = ""
    line: int | None = None
    fix: str | None = None
    hl7_code: int = 207

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict:
        # Every field is a scalar: read them directly (``asdict`` deep-copies each value, and
        # this runs for every warning of every published envelope).
        data = {name: getattr(self, name) for name in _FINDING_FIELDS}
        data["severity"] = self.severity.value
        return {k: v for k, v in data.items() if v is not None and v != ""}

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        return cls(**{**data, "severity": Severity(data["severity"])})


_FINDING_FIELDS = tuple(f.name for f in fields(Finding))


def error(rule: str, message: str, **kw) -> Finding:
    return Finding(rule=rule, severity=Severity.ERROR, message=message, **kw)


def warning(rule: str, message: str, **kw) -> Finding:
    return Finding(rule=rule, severity=Severity.WARNING, message=message, **kw)


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding about one input; valid when none of them is an error."""

    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> Report:
        return cls(tuple(findings))

    @property
    def valid(self) -> bool:
        return not any(f.is_error for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def to_dict(self) -> dict:
        return {"valid": self.valid, "findings": [f.to_dict() for f in self.findings]}
