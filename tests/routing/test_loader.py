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


# -- what YAML would silently change: duplicate keys, re-read scalars, encodings ---------------


@pytest.mark.parametrize(
    ("old", "new", "line", "where"),
    [
        (  # two values for one field: only the last would be tested
            "      patient.ins: {exists: true}\n",
            "      type_code: 11502-2\n      type_code: 18748-4\n",
            9,
            "rules[0].match.type_code",
        ),
        ("    to: [record]\n", "    to: [record]\n    to: [parking]\n", 10, "rules[0].to"),
        (
            "default:\n  to: [parking]\n",
            "default: {to: [parking]}\ndefault: {to: [record]}\n",
            11,
            "default",
        ),
    ],
)
def test_a_key_given_twice_is_refused_on_its_second_line(old, new, line, where):
    [(found_line, rule, message)] = problems(BASE.replace(old, new))
    assert (found_line, rule) == (line, "routing.duplicate-key")
    assert f"(first at line {line - 1})" in message


def test_match_values_are_the_text_written_not_what_yaml_1_1_reads():
    """010000024 is a FINESS, not octal 2097172; 12:30 is not 750; 1.10 is not 1.1."""
    table = loader.parse(
        BASE.replace(
            "      patient.ins: {exists: true}\n",
            "      facility.id: 010000024\n"
            "      sender: {in: [12:30, 0x1F]}\n"
            "      metadata.v: {prefix: 1.10}\n"
            "      patient.ins: {exists: yes}\n",
        )
    )
    values = {c.field: c.value for c in table.rules[0].conditions}
    assert values == {
        "facility.id": "010000024",
        "sender": ("12:30", "0x1F"),
        "metadata.v": "1.10",
        "patient.ins": True,  # exists stays a boolean
    }


def test_a_finess_with_a_leading_zero_matches_its_document():
    from tests.records.builders import message

    table = loader.parse(BASE.replace("patient.ins: {exists: true}", "facility.id: 010000024"))
    decision = table.decide(message(facility="010000024").envelope)
    assert decision.destinations == ("record",) and decision.matched == ("with-patient",)


@pytest.mark.parametrize("value", ["Y", "yes", "'1'", "{in: [true, N]}", "{not: {equals: on}}"])
def test_a_flag_compared_with_anything_but_true_or_false_is_refused(value):
    """Flags hold true/false; `flags.DESTDMP: Y` would never match and lose documents."""
    [(line, rule, message)] = problems(
        BASE.replace("patient.ins: {exists: true}", f"flags.DESTDMP: {value}")
    )
    assert (line, rule) == (8, "routing.flag-value")
    assert "flags.DESTDMP" in message and "write true or false" in message


def test_flags_compared_with_true_or_false_are_accepted():
    table = loader.parse(
        BASE.replace("patient.ins: {exists: true}", "flags.DESTDMP: {in: [true, false]}")
    )
    assert table.rules[0].conditions[0].value == ("true", "false")


def test_a_file_that_is_not_utf8_is_refused_with_the_line_of_the_bad_byte(tmp_path):
    path = tmp_path / "routing.yaml"
    text = BASE.replace("patient.ins: {exists: true}", "title: Compte rendu détaillé")
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(RoutingFileError) as caught:
        loader.load(path)
    [finding] = caught.value.findings
    assert (finding.line, finding.rule) == (8, "routing.encoding")
    assert "not UTF-8: byte 0xe9 at line 8" in finding.message
    path.write_bytes(text.encode("utf-8"))
    assert loader.load(path).rules[0].conditions[0].value == "Compte rendu détaillé"
