"""Read routing.yaml into a RoutingTable, or say every mistake in it with its line number.

Three passes, each reporting problems as Findings located by line: YAML syntax (strict
UTF-8, no duplicate keys), the JSON Schema in schemas/routing.schema.json (unknown keys, wrong
types), then meaning (unknown destinations, invalid regexes, flag tests that are not
true/false, rules that can never match). A file with any problem is refused whole: `load`
raises RoutingFileError, and a running gateway keeps the rules it had.

Match values are the strings written in the file: YAML 1.1 would read an unquoted FINESS
``010000024`` as an octal number (2097172) or ``12:30`` as 750, and documents are compared as
text, so such a rule would silently never match. The plain scalars under ``match`` keep their
source text instead (``exists`` stays a boolean).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gateway.broker.message import FORMAT
from gateway.errors import ConfigError
from gateway.findings import Finding, error
from gateway.routing.table import Condition, Destination, RoutingTable, Rule, unreachable

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "routing.schema.json"
MAX_FILE_BYTES = 1024 * 1024


class RoutingFileError(ConfigError):
    """The routing file has problems; ``findings`` lists each with its line."""

    def __init__(self, source: str, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("\n".join(f"{source}:{f.line or '?'}: {f.message}" for f in findings))


@functools.cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def load(path: Path) -> RoutingTable:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read routing file ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: routing file larger than {MAX_FILE_BYTES} bytes")
    return parse(_decode(raw, str(path)), source=str(path))


def parse(text: str, source: str = "<memory>") -> RoutingTable:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        findings = _duplicate_keys(node)
        if findings:
            raise RoutingFileError(source, findings)
        _match_values_as_written(node)
        data = _construct(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        found = _problem("routing.yaml", f"not valid YAML: {problem}", line)
        raise RoutingFileError(source, [found]) from None
    lines = _Lines(node)
    findings = _schema_findings(data, lines)
    if findings:
        raise RoutingFileError(source, findings)
    table = _build(data, lines, source)
    findings = _meaning_findings(data, table, lines)
    if findings:
        raise RoutingFileError(source, findings)
    return table


def from_dict(data: Any, source: str = "<memory>") -> RoutingTable:
    """A table from already-parsed data (tests, tools); checked like a file, without lines."""
    return parse(json.dumps(data), source)


# -- reading -----------------------------------------------------------------------------------


def _decode(raw: bytes, source: str) -> str:
    """The file as UTF-8, strictly: a Latin-1 "détaillé" decoded with replacement characters
    would make a rule that silently never matches."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        found = _problem(
            "routing.encoding",
            f"not UTF-8: byte 0x{raw[exc.start]:02x} at line {line}, column {column} "
            "(save the file as UTF-8)",
            line,
        )
        raise RoutingFileError(source, [found]) from None


def _duplicate_keys(root: yaml.Node | None) -> list[Finding]:
    """Keys given twice in one mapping: YAML keeps the last silently (two ``to``, two
    ``type_code`` in one ``match``), so the file would not do what it says."""
    findings: list[Finding] = []
    seen_nodes: set[int] = set()

    def walk(node: yaml.Node, path: list) -> None:
        if id(node) in seen_nodes:  # an alias: already walked where it was anchored
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, [*path, i])
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in first:
                        several = " (several values: `in: [...]`)" if path[-1:] == ["match"] else ""
                        findings.append(
                            _problem(
                                "routing.duplicate-key",
                                f"duplicate key {key.value!r} at {_where(path)} (first at line "
                                f"{first[key.tag, key.value]}): YAML would keep only the last; "
                                f"remove one{several}",
                                line,
                                _where([*path, key.value]),
                            )
                        )
                    else:
                        first[key.tag, key.value] = line
                walk(value, [*path, key.value if isinstance(key, yaml.ScalarNode) else "?"])

    if root is not None:
        walk(root, [])
    return findings


_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


def _match_values_as_written(root: yaml.Node | None) -> None:
    """Make every plain scalar under ``rules[*].match`` a string of its source text, except
    the booleans of ``exists`` (and null, which the schema refuses)."""

    def as_text(node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            if node.style is None and node.tag != _NULL:
                node.tag = _STR
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                as_text(item)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not (isinstance(key, yaml.ScalarNode) and key.value == "exists"):
                    as_text(value)

    for rule in _child(root, "rules", yaml.SequenceNode).value if root else ():
        match = _child(rule, "match", yaml.MappingNode)
        for _key, value in match.value:
            as_text(value)


def _child(node: yaml.Node | None, key: str, kind: type[yaml.Node]) -> yaml.Node:
    """The value of ``key`` in mapping ``node`` when it is a ``kind``, else an empty one."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, kind):
                return v
    return kind(tag="", value=[])


def _construct(node: yaml.Node | None) -> Any:
    if node is None:  # an empty file
        return None
    constructor = yaml.SafeLoader("")
    try:
        return constructor.construct_document(node)
    finally:
        constructor.dispose()


# -- checks ------------------------------------------------------------------------------------


def _schema_findings(data: Any, lines: _Lines) -> list[Finding]:
    validator = jsonschema.Draft202012Validator(schema())
    findings: list[Finding] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        findings.extend(_describe(err, lines))
    return findings


def _describe(err: jsonschema.ValidationError, lines: _Lines) -> list[Finding]:
    path = list(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        return [
            _problem(
                "routing.unknown-key",
                f"unknown key {key!r} at {_where(path)}"
                + (f" (known: {', '.join(sorted(known))})" if known else ""),
                lines.key(path, key),
                _where([*path, key]),
            )
            for key in err.instance
            if key not in known
        ]
    if err.validator == "oneOf" and err.context:
        deepest = max(err.context, key=lambda e: len(e.absolute_path))
        unknown = [e for e in err.context if e.validator == "additionalProperties"]
        if len(deepest.absolute_path) > len(path) or unknown:
            return _describe(
                deepest if len(deepest.absolute_path) > len(path) else unknown[0], lines
            )
        return [
            _problem(
                "routing.schema",
                f"{_where(path)}: {_short(err.instance)} is not a valid value here "
                "(expected a name, a list of names, a value or one of equals/in/prefix/regex/"
                "exists/not)",
                lines.value(path),
                _where(path),
            )
        ]
    return [
        _problem(
            "routing.schema", f"{_where(path)}: {err.message}", lines.value(path), _where(path)
        )
    ]


def _meaning_findings(data: dict, table: RoutingTable, lines: _Lines) -> list[Finding]:
    findings: list[Finding] = []
    known = set(table.destinations)

    def check(name: str | None, path: list) -> None:
        if name is not None and name not in known:
            findings.append(
                _problem(
                    "routing.unknown-destination",
                    f"unknown destination {name!r} at {_where(path)} "
                    f"(declared: {', '.join(sorted(known))})",
                    lines.value(path),
                    _where(path),
                )
            )

    for name, spec in (data.get("destinations") or {}).items():
        check((spec or {}).get("dead_letter"), ["destinations", name, "dead_letter"])
    for i, rule in enumerate(data.get("rules") or []):
        targets = rule["to"]
        for j, target in enumerate([targets] if isinstance(targets, str) else targets):
            check(target, ["rules", i, "to"] if isinstance(targets, str) else ["rules", i, "to", j])
        for fld, test in (rule.get("match") or {}).items():
            if fld.startswith("flags."):
                for value in _compared(test):
                    if value not in ("true", "false"):
                        findings.append(
                            _problem(
                                "routing.flag-value",
                                f"{fld} in rule {i + 1} is compared with {value!r}: a flag is "
                                "true or false (HL7 Y/N are read as true/false); write true "
                                "or false",
                                lines.value(["rules", i, "match", fld]),
                                _where(["rules", i, "match", fld]),
                            )
                        )
            for pattern in _regexes(test):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    findings.append(
                        _problem(
                            "routing.regex",
                            f"invalid regex for {fld!r} in rule {i + 1}: {exc}",
                            lines.value(["rules", i, "match", fld]),
                        )
                    )
    default = data["default"]["to"]
    for j, target in enumerate([default] if isinstance(default, str) else default):
        check(target, ["default", "to"] if isinstance(default, str) else ["default", "to", j])
    check(data.get("rejected"), ["rejected"])
    check(data.get("parking"), ["parking"])
    for rule, why in unreachable(table.rules):
        findings.append(
            _problem(
                "routing.unreachable-rule", f"rule {rule.name!r} can never match: {why}", rule.line
            )
        )
    return sorted(findings, key=lambda f: f.line or 0)


def _compared(test: Any) -> list[str]:
    """The values a test compares field values with for equality (bare value, equals, in)."""
    if test is None:
        return []
    if not isinstance(test, dict):
        return [test]
    return (
        ([test["equals"]] if "equals" in test else [])
        + list(test.get("in") or ())
        + _compared(test.get("not"))
    )


def _regexes(test: Any) -> list[str]:
    if not isinstance(test, dict):
        return []
    return ([test["regex"]] if "regex" in test else []) + _regexes(test.get("not"))


# -- building ----------------------------------------------------------------------------------


def _build(data: dict, lines: _Lines, source: str) -> RoutingTable:
    destinations = {
        name: _destination(name, spec or {}) for name, spec in data["destinations"].items()
    }
    rules = tuple(
        _rule(i, spec, lines.value(["rules", i])) for i, spec in enumerate(data.get("rules") or [])
    )
    return RoutingTable(
        destinations=destinations,
        rules=rules,
        default=_names(data["default"]["to"]),
        rejected=data.get("rejected"),
        parking=data.get("parking"),
        source=source,
    )


def _destination(name: str, spec: dict) -> Destination:
    return Destination(
        name=name,
        queue=spec.get("queue", name),
        queue_type=spec.get("type", "quorum"),
        durable=spec.get("durable", True),
        max_length=spec.get("max_length"),
        message_ttl_ms=spec.get("message_ttl_ms"),
        dead_letter=spec.get("dead_letter"),
        retry_delays_ms=tuple((spec.get("retry") or {}).get("delays_ms") or ()),
        consumer=spec.get("consumer"),
        single_active_consumer=spec.get("single_active_consumer", False),
        strip=tuple(spec.get("strip") or ()),
        format=spec.get("format", FORMAT),
    )


def _rule(index: int, spec: dict, line: int | None) -> Rule:
    conditions: list[Condition] = []
    for fld, test in (spec.get("match") or {}).items():
        conditions.extend(_conditions(fld, test if isinstance(test, dict) else {"equals": test}))
    return Rule(
        name=spec.get("name", f"rule-{index + 1}"),
        conditions=tuple(conditions),
        to=_names(spec["to"]),
        stop=spec.get("stop", True),
        line=line,
    )


def _conditions(fld: str, test: dict, negate: bool = False) -> list[Condition]:
    out: list[Condition] = []
    for op, value in test.items():
        if op == "not":
            out.extend(_conditions(fld, value, not negate))
        elif op == "exists":  # "exists: false" is "not exists": one form, so opposites compare
            out.append(Condition(fld, "exists", True, negate != (not value)))
        else:
            out.append(Condition(fld, op, tuple(value) if op == "in" else value, negate))
    return out


def _names(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


# -- locations ---------------------------------------------------------------------------------


class _Lines:
    """Line numbers (1-based) of values and keys in the composed YAML, by JSON path."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def value(self, path: list) -> int | None:
        node = self._find(path)
        return node.start_mark.line + 1 if node is not None else None

    def key(self, path: list, key: str) -> int | None:
        node = self._find(path)
        if isinstance(node, yaml.MappingNode):
            for k, _v in node.value:
                if k.value == key:
                    return k.start_mark.line + 1
        return self.value(path)

    def _find(self, path: list) -> yaml.Node | None:
        node = self._root
        for part in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part] if part < len(node.value) else None
            else:
                return node
            if node is None:
                return None
        return node


def _problem(rule: str, message: str, line: int | None, location: str = "") -> Finding:
    return error(rule, message, line=line, location=location, layer="routing")


def _where(path: list) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
