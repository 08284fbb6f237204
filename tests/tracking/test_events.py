"""Tracking events: metadata only, INS masked, statuses that only move forward."""

import pytest

from gateway.findings import error
from gateway.outcome import Receipt, ReceiptStatus, RejectionKind
from gateway.submission import Submission
from gateway.tracking import events
from tests.conftest import FIXTURES


def test_mask_ins_hides_nir_shaped_runs_but_keeps_other_numbers():
    assert events.mask_ins("INS 184127505612355 invalide") == "INS *************55 invalide"
    assert events.mask_ins("285052A12345678") == "*************78"  # Corsica (2A)
    assert (
        events.mask_ins("OID 1.2.250.1.213.1.4.8, 42 items") == "OID 1.2.250.1.213.1.4.8, 42 items"
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("P184127505612355", "P*************55"),  # glued to letters
        ("INS184127505612355", "INS*************55"),
        ("184127505612355abc", "*************55abc"),
        ("NIR 1 84 12 75 056 123 55 ok", "NIR *******************55 ok"),  # as printed
        ("2 85 05 2B 123 456 78", "*******************78"),  # Corsica, spaced
        ("patient 184127505612355 42 items", "patient *************55 42 items"),
    ],
)
def test_mask_ins_catches_an_ins_however_it_is_written(text, masked):
    assert events.mask_ins(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "20261101093500",  # a 14-digit timestamp: a common MSH-10
        "2026110109350",  # 13 digits
        "1184127505612355",  # 16 digits: not an INS
        "tel 01 23 45 67 89 01 23 45 67 89",
        "LAB-000001",
    ],
)
def test_mask_ins_leaves_ordinary_ids_alone(text):
    assert events.mask_ins(text) == text


def test_the_control_id_is_kept_as_sent_unless_it_is_nir_shaped():
    assert events.masked_control_id("20261101093500") == "20261101093500"
    assert events.masked_control_id("MSG184127505612355") == "MSG*************55"


def test_received_reads_hl7_header_without_patient_data():
    raw = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
    event = events.received(Submission(raw=raw, transport="mllp", sender="mllp:10.0.0.1"))
    assert event.name == "received"
    assert event.summary["control_id"] == "LAB-000001"
    assert event.summary["message_type"] == "ORU^R01^ORU_R01"
    assert event.summary["kind"] == "hl7v2" and event.summary["size"] == len(raw)
    assert "292059912304525" not in repr(event)


def test_rejection_keeps_the_report_with_identifiers_masked():
    sub = Submission(raw=b"<x/>", transport="http", sender="http:1.2.3.4")
    finding = error(
        "ins.nir-key", "INS 184127505612399 has a wrong key", location="/a", fix="check INSi"
    )
    receipt = Receipt(
        ReceiptStatus.REJECTED, sub.trace_id, findings=(finding,), rejection=RejectionKind.INVALID
    )
    event = events.answered(sub, receipt)
    assert event.name == "rejected" and event.summary == {"rules": "ins.nir-key"}
    [reported] = event.detail["report"]
    assert reported["rule"] == "ins.nir-key" and reported["fix"] == "check INSi"
    assert reported["message"] == "INS *************99 has a wrong key"


def test_status_never_moves_backwards():
    # A consumer can file before the service records the broker's confirm.
    assert events.RECEIVED in events.STATUS_REPLACES["accepted"]
    assert events.FILED not in events.STATUS_REPLACES["accepted"]
    assert events.STATUS_REPLACES["filed"] is None
    assert events.STATUS_REPLACES["replayed"] == {events.PARKED}


def test_a_pack_finding_keeps_its_rule_and_place_not_the_values_it_quotes():
    """The pack's schematrons put values of the document in their messages (a birth date, an
    identifier, every attribute of an element): operators see where and which rule."""
    sub = Submission(raw=b"<x/>", transport="http", sender="http:1.2.3.4")
    finding = error(
        "dtr1-2-TS",
        'birthTime "1979-03-15" is not a valid timestamp.',
        location="/ClinicalDocument/recordTarget/patientRole/patient/birthTime",
        layer="pack:structurationMinimale",
        fix="see 1979-03-15",
    )
    receipt = Receipt(
        ReceiptStatus.REJECTED, sub.trace_id, findings=(finding,), rejection=RejectionKind.INVALID
    )
    [reported] = events.answered(sub, receipt).detail["report"]
    assert "1979" not in str(reported)
    assert reported["rule"] == "dtr1-2-TS" and reported["location"].endswith("/birthTime")
    assert reported["layer"] == "pack:structurationMinimale"
