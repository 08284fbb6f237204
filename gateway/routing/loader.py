"""Read routing.yaml into a RoutingTable; any mistake is a ConfigError naming where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError
from gateway.routing.table import OPERATORS, Condition, Destination, RoutingTable, Rule


def load(path: Path) -> RoutingTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read routing file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return from_dict(data, source=str(path))


def from_dict(data: Any, source: str = "<memory>") -> RoutingTable:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the routing file must be a mapping")
    destinations = {
        name: _destination(name, spec or {}, source)
        for name, spec in (data.get("destinations") or {}).items()
    }
    rules = tuple(_rule(i, spec, source) for i, spec in enumerate(data.get("rules") or []))
    default = tuple((data.get("default") or {}).get("to") or ())
    table = RoutingTable(
        destinations=destinations,
        rules=rules,
        default=default,
        rejected=data.get("rejected"),
        parking=data.get("parking"),
        source=source,
    )
    for name in [*default, *(d for r in rules for d in r.to), table.rejected, table.parking]:
        if name is not None and name not in destinations:
            raise ConfigError(f"{source}: unknown destination {name!r}")
    return table


def _destination(name: str, spec: dict, source: str) -> Destination:
    retry = spec.get("retry") or {}
    return Destination(
        name=name,
        queue=spec.get("queue", name),
        queue_type=spec.get("type", "quorum"),
        durable=spec.get("durable", True),
        max_length=spec.get("max_length"),
        message_ttl_ms=spec.get("message_ttl_ms"),
        dead_letter=spec.get("dead_letter"),
        retry_delays_ms=tuple(retry.get("delays_ms") or ()),
        consumer=spec.get("consumer"),
    )


def _rule(index: int, spec: dict, source: str) -> Rule:
    if not isinstance(spec, dict) or "to" not in spec:
        raise ConfigError(f"{source}: rule #{index + 1} needs a 'to' list")
    conditions = []
    for fld, test in (spec.get("match") or {}).items():
        if not isinstance(test, dict):
            test = {"equals": test}
        for op, value in test.items():
            if op not in OPERATORS:
                raise ConfigError(f"{source}: rule #{index + 1}: unknown operator {op!r}")
            conditions.append(Condition(fld, op, value))
    to = spec["to"]
    return Rule(
        name=spec.get("name", f"rule-{index + 1}"),
        conditions=tuple(conditions),
        to=tuple([to] if isinstance(to, str) else to),
        stop=spec.get("stop", True),
    )
