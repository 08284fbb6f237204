"""Raw ORU^R01 → CR-BIO: what a result says must reach the report, and nothing more.

Every accepted message here went through the whole intake: converted, then parsed and
validated again like any CDA (``intake.read``), so the document is valid as the gateway judges.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from gateway.adapters.hl7v2 import report_time
from gateway.document import Document
from gateway.records.filing import Placement, placement
from gateway.records.store import Filing
from tests.adapters.hl7v2.test_intake import PID, errors, read
from tests.conftest import FIXTURES
from tests.records.builders import message

NS = {"h": "urn:hl7-org:v3"}
XSI = "{http://www.w3.org/2001/XMLSchema-instance}type"


def oru(*obx: str, msh7: str = "20261101093000", obr7: str = "20261101071500",
        obr22: str = "20261101093000", control: str = "C1") -> bytes:  # fmt: skip
    return (
        f"MSH|^~\\&|LAB-SIL|LABO-TILLEULS|GW|DMP|{msh7}||ORU^R01^ORU_R01|{control}|P|2.5"
        "|||||FRA|UNICODE UTF-8\r"
        f"{PID}\r"
        "ORC|RE|CMD-1^PRESC|LAB-77^LABO\r"
        f"OBR|1|CMD-1^PRESC|LAB-77^LABO|24323-8^Bilan^LN|||{obr7}|||||||||||||||{obr22}|||F\r"
        + "".join(o + "\r" for o in obx)
    ).encode()


def accepted(raw: bytes):
    doc = read(raw)
    assert isinstance(doc, Document), errors(doc)
    return doc, etree.fromstring(doc.payload)


def observations(root) -> list:
    return root.xpath("//h:act/h:entryRelationship/h:observation", namespaces=NS)


def cell(root, row: str, column: int) -> str:
    return root.xpath(f"string(//h:tr[@ID='{row}']/h:td[{column}])", namespaces=NS)


POTASSIUM = "OBX|1|NM|2823-3^Potassium^LN||9.8|mmol/L^mmol/L^UCUM|3.5-5.0|HH|||{}"
GLUCOSE = "OBX|2|NM|14749-6^Glucose^LN||5.4|mmol/L^mmol/L^UCUM|4.1-5.9|N|||F"


# --- one patient per message -------------------------------------------------------------


def test_a_message_with_two_patients_is_refused_at_the_second_pid():
    raw = (FIXTURES / "hl7v2/oru_r01_two_patients.hl7").read_bytes()
    assert errors(read(raw)) == ["hl7.pid.one-patient@PID[2]"]


# --- OBX-11 ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["W", "D"])
def test_a_result_posted_in_error_or_deleted_is_never_filed(status):
    result = read(oru(POTASSIUM.format(status), GLUCOSE))
    assert errors(result) == ["crbio.result-status@OBX[1]-11"]
    [finding] = result.report.errors
    assert "OBX-11 C" in finding.fix  # the sender is told to send a correction


def test_a_result_that_cannot_be_obtained_has_no_value_and_is_aborted():
    doc, root = accepted(oru(POTASSIUM.format("X"), GLUCOSE))
    potassium, glucose = observations(root)
    assert potassium.find("h:statusCode", NS).get("code") == "aborted"
    assert potassium.find("h:value", NS) is None
    assert potassium.find("h:interpretationCode", NS) is None
    assert cell(root, "obs-1", 2) == "non réalisable"
    assert glucose.find("h:value", NS).get("value") == "5.4"
    assert root.xpath("string(//h:entry/h:act/h:statusCode/@code)", namespaces=NS) == "completed"
    assert "crbio.no-result" in {f.rule for f in doc.warnings}  # the 9.8 was not reported


# --- text lines and comments -------------------------------------------------------------


def test_every_line_of_a_text_result_and_every_comment_reach_the_report():
    raw = (FIXTURES / "hl7v2/oru_r01_comments_and_text_lines.hl7").read_bytes()
    _doc, root = accepted(raw)
    potassium, conclusion = observations(root)
    # FT repetitions: separate lines in the narrative and in the value
    lines = root.xpath("//h:tr[@ID='obs-2']/h:td[2]/text()", namespaces=NS)
    assert lines == ["Presence de blastes circulants.",
                     "A CONTROLER EN URGENCE, appeler le biologiste."]  # fmt: skip
    assert conclusion.find("h:value", NS).text == "\n".join(lines)
    # NTE after an OBX: that result's comment, in the narrative and as a comment entry
    comment = root.xpath("//h:tr[@ID='obs-1-nte']/h:td[2]/text()", namespaces=NS)
    assert comment == ["Echantillon hemolyse: kaliemie faussement elevee,", "a recontroler."]
    [note] = potassium.xpath("h:entryRelationship/h:act", namespaces=NS)
    assert note.xpath("string(h:code/@code)", namespaces=NS) == "48767-8"
    assert note.xpath("string(h:text/h:reference/@value)", namespaces=NS) == "#obs-1-nte"
    # NTE after the OBR: the order's comment
    order = root.xpath("//h:section/h:text/h:paragraph", namespaces=NS)
    assert [p.get("ID") for p in order] == ["obr-1-nte"]
    assert "delai de centrifugation" in order[0].text
    act_notes = root.xpath("//h:entry/h:act/h:entryRelationship/h:act", namespaces=NS)
    assert [n.xpath("string(h:text/h:reference/@value)", namespaces=NS) for n in act_notes] == [
        "#obr-1-nte"
    ]


def test_a_comment_after_the_patient_is_not_mistaken_for_a_result_comment():
    raw = oru(GLUCOSE).replace(b"\rORC|", b"\rNTE|1||patient a jeun\rORC|", 1)
    doc, _root = accepted(raw)
    assert b"patient a jeun" not in doc.payload
    assert [f"{f.rule}@{f.location}" for f in doc.warnings if f.rule == "crbio.nte"] == [
        "crbio.nte@NTE[1]"
    ]


# --- value types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sn", "kind", "bounds", "shown"),
    [
        ("<^0.5", "IVL_PQ", [("high", "0.5", "false")], "<0.5"),
        (">=^10", "IVL_PQ", [("low", "10", "true")], ">=10"),
        ("^1^-^10", "IVL_PQ", [("low", "1", None), ("high", "10", None)], "1-10"),
        ("^4.2", "PQ", [], "4.2"),
        ("^1^:^128", "ST", [], "1:128"),
    ],
)
def test_structured_numeric_values_keep_their_comparator(sn, kind, bounds, shown):
    _doc, root = accepted(oru(f"OBX|1|SN|1988-5^CRP^LN||{sn}|mg/L^mg/L^UCUM|0-5|N|||F"))
    [obs] = observations(root)
    value = obs.find("h:value", NS)
    assert value.get(XSI) == kind
    assert [(b.tag.split("}")[1], b.get("value"), b.get("inclusive")) for b in value] == bounds
    assert cell(root, "obs-1", 2) == shown


def test_a_structured_numeric_that_is_not_one_is_refused():
    assert errors(read(oru("OBX|1|SN|1988-5^CRP^LN||<^abc|mg/L^mg/L^UCUM||N|||F"))) == [
        "crbio.numeric@OBX[1]-5"
    ]


def test_embedded_data_in_a_raw_results_message_is_refused():
    pdf = "^APPLICATION^PDF^Base64^JVBERi0xLjQgZmFrZSByZXBvcnQ="
    raw = oru(GLUCOSE, f"OBX|2|ED|11502-2^CR d'examens biologiques^LN||{pdf}||||||F")
    result = read(raw)
    assert errors(result) == ["crbio.value-type@OBX[2]-2"]


def test_a_hex_escape_is_read_in_the_message_character_set():
    _doc, root = accepted(oru("OBX|1|ST|5778-6^Couleur urine^LN||ros\\XC3A9\\||||||F"))
    assert cell(root, "obs-1", 2) == "rosé"


# --- versions ----------------------------------------------------------------------------


def test_dtm_of_any_precision_and_offset():
    assert report_time.dtm("202611010931+0100")[:2] == (
        datetime(2026, 11, 1, 8, 31, tzinfo=UTC),
        12,
    )
    assert report_time.dtm("20261101093105.25-0230").at == datetime(
        2026, 11, 1, 12, 1, 5, 250000, tzinfo=UTC
    )
    assert report_time.dtm("20260715").at == datetime(
        2026, 7, 14, 22, 0, tzinfo=UTC
    )  # Paris, summer
    assert report_time.dtm("2026").digits == 4
    assert report_time.dtm("20261301") is None and report_time.dtm("2026110") is None
    assert report_time.dtm("20261101+2500") is None


def test_local_times_where_the_clocks_change_are_read_one_way():
    # autumn: 02:30 happens twice; without an offset, the first (summer time), and said so
    repeated = report_time.dtm("202610250230")
    assert repeated.at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC) and repeated.ambiguous
    assert not report_time.dtm("202610250230+0100").ambiguous
    # spring: 02:30 never happens; read with the offset before the change (+0100)
    skipped = report_time.dtm("202603290230")
    assert skipped.at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC) and not skipped.ambiguous
    assert report_time.ts("202603290230") == "202603290230+0100"  # the instant the CDA says too


def version(doc) -> int:
    return doc.fields["version"]


def prelim_then_final(p_time: str, f_time: str, obr7: str = "20261101071500"):
    p = accepted(oru(POTASSIUM.format("P"), obr7=obr7, obr22=p_time, control="P1"))[0]
    f = accepted(oru(POTASSIUM.format("F"), obr7=obr7, obr22=f_time, control="F1"))[0]
    assert p.fields["set_id"] == f.fields["set_id"]
    return p, f


def assert_final_supersedes(p, f) -> None:
    assert 1 < version(p) < version(f)
    assert placement(version(f), None, p.fields["document_id"], version(p)) is Placement.CURRENT
    assert placement(version(p), None, f.fields["document_id"], version(f)) is Placement.HISTORY


@pytest.mark.parametrize(
    ("p_time", "f_time"),
    [
        ("202611010931", "202611010931"),  # same minute: the final still outranks
        ("202611010800+0100", "202611010930+0100"),  # offsets: read, not ignored
        ("20261101093000", "20261101093000"),  # same second
    ],
)
def test_a_final_report_always_supersedes_the_preliminary(p_time, f_time):
    assert_final_supersedes(*prelim_then_final(p_time, f_time))


@pytest.mark.parametrize(
    ("collected", "p_time", "f_time"),
    [
        # spring, 29 March 2026: 01:30 (+0100) → 03:50 (+0200) is 1 h 20 elapsed, not 2 h 20;
        # the final at 04:10+0200 (1 h 40) comes after it
        ("202603290130", "202603290350", "202603290410+0200"),
        # autumn, 25 October 2026: 03:40 (+0100, no offset) is 4 h 10 after 00:30 (+0200),
        # after a preliminary sent at 03:20+0100 (3 h 50), though 3 h 10 apart on the clock
        ("202610250030", "202610250320+0100", "202610250340"),
        # in the repeated hour, with offsets: the final 20 minutes after the preliminary
        ("202610250030", "202610250250+0200", "202610250210+0100"),
    ],
)
def test_versions_count_elapsed_time_across_a_change_of_summer_time(collected, p_time, f_time):
    assert_final_supersedes(*prelim_then_final(p_time, f_time, obr7=collected))


def test_spring_forward_counts_one_hour_not_two():
    doc = accepted(oru(GLUCOSE, obr7="202603290130", obr22="202603290330"))[0]
    assert version(doc) == 1 + 3 * 3600 + 1


def test_offsets_count_real_time_between_collection_and_report():
    plus_one = accepted(oru(GLUCOSE, obr7="20261101071500+0100", obr22="20261101091500+0100"))[0]
    utc = accepted(oru(GLUCOSE, obr7="20261101061500+0000", obr22="20261101081500+0000"))[0]
    assert version(plus_one) == version(utc) == 1 + 3 * 7200 + 1


@pytest.mark.parametrize(
    ("obr7", "obr22", "where"),
    [
        ("", "20261101093000", "crbio.version@OBR-7"),  # no collection time
        ("20261101", "202611010930", "crbio.version@OBR-7"),  # collected "that day"
        ("2026110107", "202611010930", "crbio.version@OBR-7"),  # to the hour
        ("20261101071500", "20261101", "crbio.version@OBR-22"),  # a day: cannot order
        ("20261101101500", "20261101093000", "crbio.version@OBR-22"),  # before collection
        ("20261101071500", "", "crbio.version@OBR-22"),  # no report time: MSH-7 is not used
        # no offset in the hour repeated in autumn: 02:50 then 02:10 may be 20 minutes later
        ("202610250030", "202610250210", "crbio.version@OBR-22"),
    ],
)
def test_a_report_whose_versions_cannot_be_ordered_is_refused(obr7, obr22, where):
    result = read(oru(GLUCOSE, obr7=obr7, obr22=obr22))
    assert errors(result) == [where]
    [finding] = result.report.errors
    assert where.split("@")[1] in finding.fix  # the sender is told which field to send


def test_a_preliminary_collected_on_a_day_cannot_outrank_the_final():
    # OBR-7 "20261101" counted from midnight gave the preliminary v108001 and the later final,
    # collected at 08:00, v43202: the preliminary stayed current
    assert errors(read(oru(POTASSIUM.format("P"), obr7="20261101", obr22="202611011000"))) == [
        "crbio.version@OBR-7"
    ]
    final = oru(POTASSIUM.format("F"), obr7="202611010800", obr22="202611011200")
    assert version(accepted(final)[0]) == 1 + 3 * 4 * 3600 + 1


# --- a report sent again -----------------------------------------------------------------


def filed(store, doc) -> Filing:
    """The converted document filed in the record store, as the record consumer files it."""
    return store.file(
        message(
            doc.fields["document_id"],
            doc.payload,
            set_id=doc.fields["set_id"],
            version=doc.fields["version"],
        )
    )


@pytest.mark.parametrize(
    "again",
    [
        {"control": "C2"},  # a new MSH-10 (a sender that numbers every sending)
        {"msh7": "20261101094500"},  # the message built again, MSH-7 regenerated
        {"control": "C2", "msh7": "20261101094500"},
    ],
)
def test_a_report_sent_again_is_a_duplicate_never_a_conflict(store, again):
    first = accepted(oru(GLUCOSE))[0]
    resent = accepted(oru(GLUCOSE, **again))[0]
    assert resent.fields["document_id"] == first.fields["document_id"]
    assert resent.payload == first.payload
    assert filed(store, first) is Filing.STORED
    assert filed(store, resent) is Filing.DUPLICATE


def test_a_later_report_of_the_order_is_filed_as_its_new_version(store):
    p, f = prelim_then_final("202611010800", "202611010930")
    assert p.fields["document_id"] != f.fields["document_id"]
    assert filed(store, p) is Filing.STORED
    assert filed(store, f) is Filing.STORED
    assert filed(store, p) is Filing.DUPLICATE  # the preliminary resent late changes nothing
    preliminary = store.document(p.fields["document_id"])
    assert preliminary["status"] == "superseded"
    assert preliminary["superseded_by"] == f.fields["document_id"]


def test_a_result_made_final_without_its_value_is_refused_not_filed_empty():
    empty_u = "OBX|1|NM|2823-3^Potassium^LN|||mmol/L^mmol/L^UCUM|3.5-5.0||||U"
    assert "crbio.result-status@OBX[1]-11" in errors(read(oru(empty_u, GLUCOSE)))
    _doc, root = accepted(oru(POTASSIUM.format("U"), GLUCOSE))  # with its value: final
    assert observations(root)[0].find("h:value", NS).get("value") == "9.8"
    assert root.xpath("string(//h:entry/h:act/h:statusCode/@code)", namespaces=NS) == "completed"
