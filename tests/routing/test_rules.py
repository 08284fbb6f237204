"""Rule evaluation (pure): each operator and field kind, stop/continue, default, explanations,
and the French flows encoded in the example routing.yaml."""

from __future__ import annotations

import pytest

from gateway.envelope import Code, Envelope, Party, Patient
from gateway.routing import loader
from tests.conftest import ROOT

HDS = "1.2.250.1.213.1.1.4.13"  # masking / visibility code system


def envelope(**fields) -> Envelope:
    base = {
        "document_id": "1.2.3^1",
        "source_kind": "cda",
        "content_type": "application/xml",
        "sha256": "0" * 64,
        "size": 1,
        "sender": "lab-1",
        "received_at": "2026-11-01T00:00:00Z",
        "trace_id": "t",
        "patient": Patient(ins="184127505612355"),
    }
    return Envelope(**{**base, **fields})


def table_with(match: str, stop: bool = True):
    return loader.parse(
        f"""\
version: 1
destinations: {{hit: {{}}, other: {{}}, parking: {{}}}}
rules:
  - name: r
    match: {match}
    to: [hit]
    stop: {str(stop).lower()}
  - name: catch-lab
    match: {{sender: {{prefix: lab-}}}}
    to: [other]
default: {{to: [parking]}}
"""
    )


@pytest.mark.parametrize(
    ("match", "env", "hit"),
    [
        ("{source_kind: hl7v2}", envelope(source_kind="hl7v2"), True),
        ("{source_kind: hl7v2}", envelope(), False),
        ("{sender: {in: [lab-1, lab-2]}}", envelope(), True),
        ("{sender: {in: [lab-2]}}", envelope(), False),
        ("{type_code: {prefix: '115'}}", envelope(type_code=Code("11502-2", "LN")), True),
        ("{type_code: {regex: '1150[0-9]-2'}}", envelope(type_code=Code("11502-2")), True),
        ("{type_code: {regex: '1150'}}", envelope(type_code=Code("11502-2")), False),
        ("{format_code: 'urn:x'}", envelope(format_code=Code("urn:x")), True),
        ("{facility.id: {prefix: '1'}}", envelope(facility=Party(id="1234")), True),
        ("{facility.id: {exists: true}}", envelope(), False),
        ("{confidentiality: R}", envelope(confidentiality=(Code("N"), Code("R"))), True),
        ("{confidentiality: {not: {in: [R, V]}}}", envelope(confidentiality=(Code("R"),)), False),
        ("{flags.DESTDMP: true}", envelope(flags={"DESTDMP": True}), True),
        ("{flags.DESTDMP: true}", envelope(flags={"DESTDMP": False}), False),
        ("{flags.DESTDMP: {not: {equals: false}}}", envelope(), True),
        ("{patient.ins: {exists: false}}", envelope(patient=Patient()), True),
        ("{patient.ins: {exists: false}}", envelope(), False),
        (
            "{metadata.message_type: {prefix: MDM}}",
            envelope(metadata={"message_type": "MDM^T02"}),
            True,
        ),
        ("{metadata.hl7_version: {exists: true}}", envelope(), False),
        ("{flags: {exists: false}}", envelope(), True),
        ("{flags: {exists: false}}", envelope(flags={"MASQUE_PS": False}), False),
    ],
)
def test_each_operator_over_each_field_kind(match, env, hit):
    decision = table_with(match).decide(env)
    assert ("hit" in decision.destinations) is hit


def test_stop_ends_evaluation_and_continue_adds_later_destinations():
    env = envelope(source_kind="hl7v2")
    assert table_with("{source_kind: hl7v2}", stop=True).decide(env).destinations == ("hit",)
    assert table_with("{source_kind: hl7v2}", stop=False).decide(env).destinations == (
        "hit",
        "other",
    )


def test_default_applies_only_when_no_rule_matched():
    decision = table_with("{source_kind: hl7v2}").decide(envelope(sender="pharmacy"))
    assert decision.destinations == ("parking",) and decision.matched == ()
    assert "default" in decision.reasons[-1]


def test_explain_says_which_condition_failed_and_what_was_found():
    lines = table_with("{source_kind: hl7v2}").explain(envelope())
    assert lines[0].startswith("  no    r (line 4): source_kind equals 'hl7v2' is false")
    assert "found: cda" in lines[0]
    assert lines[1].startswith("  MATCH catch-lab")


# -- the example routing.yaml: the French flows -------------------------------------------------


@pytest.fixture(scope="module")
def example():
    return loader.load(ROOT / "routing.yaml")


def flags(**values: bool) -> dict[str, bool]:
    return dict(values)


def test_cda_sent_directly_goes_to_the_record(example):
    d = example.decide(envelope(type_code=Code("34133-9")))
    assert d.destinations == ("patient-record",)


def test_hl7v2_flags_choose_record_secure_mail_and_patient_mailbox(example):
    env = envelope(
        source_kind="hl7v2",
        flags=flags(DESTDMP=True, DESTMSSANTEPS=True, DESTMSSANTEPAT=True, MASQUE_PS=False),
    )
    assert example.decide(env).destinations == (
        "patient-record",
        "secure-mail-ps",
        "patient-mailbox",
    )


def test_destdmp_no_keeps_it_out_of_the_record(example):
    env = envelope(source_kind="hl7v2", flags=flags(DESTDMP=False, DESTMSSANTEPS=True))
    assert example.decide(env).destinations == ("secure-mail-ps",)


def test_flags_without_destdmp_do_not_reach_the_record(example):
    """MSSanté-only messages carry masking flags but no DESTDMP: not for the shared record."""
    env = envelope(source_kind="hl7v2", flags=flags(MASQUE_PS=False, INVISIBLE_PATIENT=True))
    assert "patient-record" not in example.decide(env).destinations


def test_raw_hl7v2_without_any_flag_goes_to_the_record(example):
    d = example.decide(envelope(source_kind="hl7v2"))
    assert d.destinations == ("patient-record",)


def test_biology_reports_also_go_to_lab_statistics(example):
    d = example.decide(envelope(type_code=Code("11502-2", "2.16.840.1.113883.6.1")))
    assert "lab-statistics" in d.destinations and "patient-record" in d.destinations


@pytest.mark.parametrize(
    "hidden",
    [
        {"flags": {"DESTDMP": True, "MASQUE_PS": True}},
        {"flags": {"DESTDMP": True, "INVISIBLE_PATIENT": True}},
        {"confidentiality": (Code("N"), Code("MASQUE_PS", HDS))},
        {},
    ],
)
def test_routing_never_sends_documents_to_the_patient_notification_queue(example, hidden):
    """Notifications carry no clinical content and follow filing: the record consumer
    publishes them (tests/records/test_notifications.py), never a copy of the document."""
    d = example.decide(envelope(**hidden))
    assert "patient-record" in d.destinations
    assert "patient-notification" not in d.destinations


def test_without_patient_nothing_matches_and_it_is_parked(example):
    assert example.decide(envelope(patient=Patient())).destinations == ("parking",)


# -- a de-identified copy is not a delivery ------------------------------------------------------


def side_copy_table(stop: bool = False):
    return loader.parse(
        f"""\
version: 1
destinations: {{record: {{}}, stats: {{strip: [patient]}}, parking: {{}}}}
rules:
  - name: with-flag
    match: {{flags.DESTDMP: true}}
    to: [record]
    stop: false
  - name: statistics
    match: {{type_code: 11502-2}}
    to: [stats]
    stop: {str(stop).lower()}
default: {{to: [parking]}}
"""
    )


@pytest.mark.parametrize("stop", [False, True])
def test_a_document_matched_only_by_a_stripped_copy_also_goes_to_the_default(stop):
    decision = side_copy_table(stop).decide(envelope(type_code=Code("11502-2")))
    assert decision.destinations == ("stats", "parking")
    assert decision.matched == ("statistics",) and decision.by_default
    assert "only de-identified copies (stats) matched, not a delivery" in decision.reasons[-1]


def test_a_stripped_copy_beside_a_delivery_does_not_add_the_default():
    env = envelope(type_code=Code("11502-2"), flags={"DESTDMP": True})
    decision = side_copy_table().decide(env)
    assert decision.destinations == ("record", "stats") and not decision.by_default


def test_explain_says_when_the_default_applies_and_why():
    lines = side_copy_table().explain(envelope(type_code=Code("11502-2")))
    assert lines[-1] == (
        "  DEFAULT only de-identified copies (stats) matched, not a delivery → default parking"
    )
    assert (
        side_copy_table().explain(envelope(sender="x"))[-1].startswith("  DEFAULT no rule matched")
    )


def test_a_biology_report_for_no_record_is_parked_besides_its_statistics_copy(example):
    """No DESTDMP flag (MSSanté-only flags): it used to reach only lab-statistics."""
    env = envelope(type_code=Code("11502-2"), source_kind="hl7v2", flags=flags(MASQUE_PS=True))
    assert example.decide(env).destinations == ("lab-statistics", "parking")
    no_ins = envelope(type_code=Code("11502-2"), patient=Patient(), flags=flags(DESTDMP=True))
    assert example.decide(no_ins).destinations == ("lab-statistics", "parking")
