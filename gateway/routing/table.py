"""The routing table: destinations and ordered rules over envelope fields. Pure.

``decide(envelope)`` walks the rules in order; each matching rule adds its destinations and
either stops (``stop: true``, the default) or lets later rules add more. The default
destinations apply when no rule delivers the document: no rule matched, or the rules that
matched only send de-identified side copies (destinations with ``strip: [patient]``, e.g.
statistics) — a copy without the patient is not a delivery, so without the default such a
document would reach neither the record nor parking. Every step is recorded as a reason,
which is what `gateway route --explain` prints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.broker.message import FORMAT
from gateway.envelope import Envelope

OPERATORS = ("equals", "in", "prefix", "regex", "exists")
STRIPPABLE = ("patient",)  # envelope parts a destination may refuse to receive


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
    single_active_consumer: bool = False  # one consumer at a time across processes: FIFO
    strip: tuple[str, ...] = ()  # parts removed before publishing here, e.g. ("patient",)
    format: str = FORMAT  # the document message format its consumers read (message.FORMATS)

    @property
    def strips_patient(self) -> bool:
        return "patient" in self.strip


@dataclass(frozen=True, slots=True)
class Condition:
    """``field`` ``op`` ``value`` over the envelope, e.g. type_code equals 11502-2.

    A field may hold several values (confidentiality codes, authors …): the test holds when
    any value passes. ``negate`` inverts the whole test (``not:`` in routing.yaml), so
    ``confidentiality not in [MASQUE_PS]`` holds when *no* code is MASQUE_PS.
    """

    field: str
    op: str
    value: Any = None
    negate: bool = False

    def test(self, envelope: Envelope) -> bool:
        return self._holds(field_values(envelope, self.field)) != self.negate

    def _holds(self, values: list[str]) -> bool:
        if self.op == "exists":
            return bool(values) == (self.value is None or bool(self.value))
        if self.op == "equals":
            return scalar(self.value) in values
        if self.op == "in":
            wanted = {scalar(x) for x in self.value}
            return any(v in wanted for v in values)
        if self.op == "prefix":
            return any(v.startswith(str(self.value)) for v in values)
        if self.op == "regex":
            return any(re.fullmatch(str(self.value), v) for v in values)
        raise ValueError(f"unknown operator {self.op}")

    def negated(self) -> Condition:
        return Condition(self.field, self.op, self.value, not self.negate)

    def __str__(self) -> str:
        if self.op == "exists":
            present = self.value is None or bool(self.value)
            return f"{self.field} {'exists' if present != self.negate else 'absent'}"
        value = [scalar(v) for v in self.value] if self.op == "in" else scalar(self.value)
        return f"{self.field} {'not ' if self.negate else ''}{self.op} {value!r}"


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
    by_default: bool = False  # the default destinations were added (no rule delivered it)


@dataclass(frozen=True)
class RoutingTable:
    destinations: Mapping[str, Destination]
    rules: tuple[Rule, ...] = ()
    default: tuple[str, ...] = ()
    rejected: str | None = None  # destination for rejected inputs and their reports
    parking: str | None = None  # destination for what could not be routed or delivered
    source: str = field(default="<memory>", compare=False)

    def format_of(self, name: str) -> str:
        """The document message format destination ``name`` takes (unknown: the default)."""
        destination = self.destinations.get(name)
        return destination.format if destination is not None else FORMAT

    def is_side_copy(self, name: str) -> bool:
        """Whether destination ``name`` only receives a de-identified copy (``strip``)."""
        destination = self.destinations.get(name)
        return destination is not None and destination.strips_patient

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
        why_default = self._why_default(matched, chosen)
        if why_default is not None:
            chosen.extend(d for d in self.default if d not in chosen)
            reasons.append(f"{why_default} → default {', '.join(self.default) or '(none)'}")
        return Decision(tuple(chosen), tuple(reasons), tuple(matched), why_default is not None)

    def _why_default(self, matched: list[str], chosen: list[str]) -> str | None:
        """Why the default applies, or None when a matched rule delivers the document."""
        if not matched:
            return "no rule matched"
        if all(self.is_side_copy(d) for d in chosen):
            return f"only de-identified copies ({', '.join(chosen)}) matched, not a delivery"
        return None

    def explain(self, envelope: Envelope) -> list[str]:
        """Every rule's verdict in order, for `gateway route --explain`: what matched and why,
        which condition failed, and which rules were never evaluated after a stop."""
        lines: list[str] = []
        stopped_by: str | None = None
        for rule in self.rules:
            where = f" (line {rule.line})" if rule.line else ""
            if stopped_by is not None:
                lines.append(f"  skip  {rule.name}{where}: not evaluated, {stopped_by!r} stopped")
                continue
            failed = next((c for c in rule.conditions if not c.test(envelope)), None)
            if failed is not None:
                seen = ", ".join(field_values(envelope, failed.field)) or "nothing"
                lines.append(f"  no    {rule.name}{where}: {failed} is false (found: {seen})")
                continue
            why = " and ".join(map(str, rule.conditions)) or "no condition"
            action = "stop" if rule.stop else "continue"
            lines.append(f"  MATCH {rule.name}{where}: {why} → {', '.join(rule.to)} ({action})")
            if rule.stop:
                stopped_by = rule.name
        decision = self.decide(envelope)
        if decision.by_default:
            lines.append(f"  DEFAULT {decision.reasons[-1]}")
        return lines


def unreachable(rules: tuple[Rule, ...]) -> list[tuple[Rule, str]]:
    """Rules that can never match, with why: an earlier stopping rule already takes
    everything they would (its conditions are a subset of theirs), or they require a
    condition and its negation at once."""
    found: list[tuple[Rule, str]] = []
    for i, rule in enumerate(rules):
        conditions = set(rule.conditions)
        if any(c.negated() in conditions for c in conditions):
            found.append((rule, "it requires a condition and its opposite"))
            continue
        for earlier in rules[:i]:
            if earlier.stop and set(earlier.conditions) <= conditions:
                found.append((rule, f"rule {earlier.name!r} before it matches first and stops"))
                break
    return found


def scalar(value: Any) -> str:
    """A rule's value as the string field values are compared with (YAML true → "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
    if isinstance(value, Mapping):  # a whole map (flags, metadata): its keys; {} is absent
        return [str(k) for k in value]
    if isinstance(value, tuple | list):
        return [s for v in value for s in _flatten(v)]
    if isinstance(value, bool):
        return [scalar(value)]
    if hasattr(value, "code"):  # a Code: match on its code
        return [value.code]
    return [str(value)]
