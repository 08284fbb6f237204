"""routing.yaml checks: each problem once, with the line it is on; the example file is valid."""

from __future__ import annotations

import json

import jsonschema
import pytest

from gateway.routing import loader
from gateway.routing.loader import RoutingFileError
from tests.conftest import ROOT

BASE = """\
version: 1
destinations:
  record: {type: quorum, dead_letter: parking}
  parking: {}
rules:
  - name: with-patient
    match:
      patient.ins: {exists: true}
    to: [record]
default:
  to: [parking]
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(RoutingFileError) as caught:
        loader.parse(text, "test.yaml")
    return [(f.line, f.rule, f.message) for f in caught.value.findings]


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(json.loads(loader.SCHEMA_FILE.read_text()))


def test_the_example_routing_file_is_valid():
    table = loader.load(ROOT / "routing.yaml")
    assert {"patient-record", "secure-mail-ps", "patient-mailbox", "lab-statistics"} <= set(
        table.destinations
    )
    assert table.rejected == "rejected" and table.parking == "parking"
    assert table.destinations["lab-statistics"].strips_patient
    assert all(r.line for r in table.rules)


def test_base_is_valid_and_rules_know_their_line():
    table = loader.parse(BASE)
    assert table.rules[0].line == 6


def test_unknown_key_is_reported_on_its_line():
    [(line, rule, message)] = problems(BASE.replace("  parking: {}", "  parking: {colour: red}"))
    assert (line, rule) == (4, "routing.unknown-key")
    assert "unknown key 'colour' at destinations.parking" in message


def test_a_destination_takes_the_json_format_unless_it_names_another():
    table = loader.parse(
        BASE.replace("  parking: {}", "  parking: {format: passerelle.document/2}")
    )
    assert table.destinations["record"].format == "passerelle.document/1"
    assert table.destinations["parking"].format == "passerelle.document/2"
    [(line, rule, _)] = problems(BASE.replace("  parking: {}", "  parking: {format: xml}"))
    assert (line, rule) == (4, "routing.schema")


def test_unknown_operator_names_the_operator_and_line():
    text = BASE.replace("{exists: true}", "{equal: x}")
    [(line, rule, message)] = problems(text)
    assert (line, rule) == (8, "routing.unknown-key")
    assert "'equal'" in message and "rules[0].match.patient.ins" in message


def test_unknown_destinations_each_give_one_error_with_their_line():
    text = BASE.replace("to: [record]", "to: [record, archive]").replace(
        "dead_letter: parking", "dead_letter: nowhere"
    )
    found = problems(text)
    assert [(line, rule) for line, rule, _ in found] == [
        (3, "routing.unknown-destination"),
        (9, "routing.unknown-destination"),
    ]
    assert "'nowhere'" in found[0][2] and "'archive'" in found[1][2]


def test_a_rule_after_a_broader_stopping_rule_is_unreachable():
    text = """\
version: 1
destinations:
  record: {}
  parking: {}
rules:
  - name: with-patient
    match: {patient.ins: {exists: true}}
    to: [record]
  - name: narrower
    match: {patient.ins: {exists: true}, type_code: 11502-2}
    to: [parking]
  - name: contradiction
    match: {sender: {equals: a, not: {equals: a}}}
    to: [parking]
default: {to: parking}
"""
    found = problems(text)
    assert [(line, rule) for line, rule, _ in found] == [
        (9, "routing.unreachable-rule"),
        (12, "routing.unreachable-rule"),
    ]
    assert "'with-patient' before it matches first and stops" in found[0][2]
    assert "condition and its opposite" in found[1][2]


def test_a_continuing_rule_does_not_hide_later_rules():
    after = "  - name: after\n    match: {patient.ins: {exists: true}}\n    to: [parking]\n"
    text = BASE.replace("    to: [record]\n", "    to: [record]\n    stop: false\n" + after)
    table = loader.parse(text)
    assert [r.name for r in table.rules] == ["with-patient", "after"]


def test_invalid_regex_and_yaml_syntax_are_located():
    found = problems(BASE.replace("{exists: true}", "{regex: '(unclosed'}"))
    assert [(line, rule) for line, rule, _ in found] == [(8, "routing.regex")]
    found = problems(BASE.replace("  parking: {}", "  parking: {"))
    assert found[0][1] == "routing.yaml" and found[0][0] is not None


def test_missing_required_parts_are_schema_errors():
    found = problems("version: 1\ndestinations: {a: {}}\n")
    assert [rule for _, rule, _ in found] == ["routing.schema"]
    assert "'default' is a required property" in found[0][2]


def test_error_text_names_file_and_line():
    with pytest.raises(RoutingFileError, match=r"test\.yaml:4: unknown key 'colour'"):
        loader.parse(BASE.replace("  parking: {}", "  parking: {colour: red}"), "test.yaml")
