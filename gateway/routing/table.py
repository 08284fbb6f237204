"""The routing table: destinations and ordered rules over envelope fields. Pure.

``decide(envelope)`` walks the rules in order; each matching rule adds its destinations and
either stops (``stop: true``, the default) or lets later rules add more. When no rule matched,
the default destinations apply. Every step is recorded as a reason, which is what
`gateway route --explain` prints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.envelope import Envelope

OPERATORS = ("equals", "in", "prefix", "regex", "exists")


@dataclass(frozen=True, slots=True)
class Destination:
    """A named queue documents are delivered to."""

    name: str
    queue: str
    queue_type: str = "quorum"
    durable: bool = True
    max_length: int | None = None
    message_ttl_ms: int | None = None
    dead_letter: str | None = None  # destination that receives what this queue rejects
    retry_delays_ms: tuple[int, ...] = ()  # one retry per delay, then dead-letter
    consumer: str | None = None  # built-in consumer attached to it ("patient-record", …)


@dataclass(frozen=True, slots=True)
class Condition:
    """``field`` ``op`` ``value`` over the envelope, e.g. type_code.code equals 11502-2."""

    field: str
    op: str
    value: Any = None

    def test(self, envelope: Envelope) -> bool:
        values = field_values(envelope, self.field)
        if self.op == "exists":
            return bool(values) == bool(self.value if self.value is not None else True)
        if self.op == "equals":
            return str(self.value) in values
        if self.op == "in":
            return any(v in {str(x) for x in self.value} for v in values)
        if self.op == "prefix":
            return any(v.startswith(str(self.value)) for v in values)
        if self.op == "regex":
            return any(re.fullmatch(str(self.value), v) for v in values)
        raise ValueError(f"unknown operator {self.op}")

    def __str__(self) -> str:
        return (
            f"{self.field} {self.op} {self.value!r}"
            if self.op != "exists"
            else (f"{self.field} exists" if self.value in (None, True) else f"{self.field} absent")
        )


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    to: tuple[str, ...]
    stop: bool = True
    line: int | None = None

    def matches(self, envelope: Envelope) -> bool:
        return all(c.test(envelope) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Decision:
    destinations: tuple[str, ...]
    reasons: tuple[str, ...]
    matched: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingTable:
    destinations: Mapping[str, Destination]
    rules: tuple[Rule, ...] = ()
    default: tuple[str, ...] = ()
    rejected: str | None = None  # destination for rejected inputs and their reports
    parking: str | None = None  # destination for what could not be routed or delivered
    source: str = field(default="<memory>", compare=False)

    def decide(self, envelope: Envelope) -> Decision:
        chosen: list[str] = []
        reasons: list[str] = []
        matched: list[str] = []
        for rule in self.rules:
            if not rule.matches(envelope):
                continue
            matched.append(rule.name)
            why = " and ".join(map(str, rule.conditions)) or "always"
            reasons.append(f"rule {rule.name!r} matched ({why}) → {', '.join(rule.to)}")
            chosen.extend(d for d in rule.to if d not in chosen)
            if rule.stop:
                break
        if not matched:
            chosen = list(self.default)
            reasons.append(f"no rule matched → default {', '.join(self.default) or '(none)'}")
        return Decision(tuple(chosen), tuple(reasons), tuple(matched))


def field_values(envelope: Envelope, path: str) -> list[str]:
    """Values of a dotted envelope path as strings (lists flatten; absent gives [])."""
    value: Any = envelope
    for part in path.split("."):
        value = _step(value, part)
        if value is None:
            return []
    return _flatten(value)


def _step(value: Any, part: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(part)
    if isinstance(value, tuple | list):
        items = [_step(v, part) for v in value]
        return [i for i in items if i is not None] or None
    if part == "confidentiality" and isinstance(value, Envelope):
        return [c.code for c in value.confidentiality]
    return getattr(value, part, None)


def _flatten(value: Any) -> list[str]:
    if isinstance(value, tuple | list):
        return [s for v in value for s in _flatten(v)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if hasattr(value, "code"):  # a Code: match on its code
        return [value.code]
    return [str(value)]
