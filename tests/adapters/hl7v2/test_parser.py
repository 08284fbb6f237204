from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.adapters.hl7v2.parser import parse, parse_header
from tests.conftest import FIXTURES


def oru() -> bytes:
    return (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()


def test_fields_components_and_escapes():
    msg, findings = parse(oru())
    assert findings == []
    assert msg.message_type == ("ORU", "R01", "ORU_R01")
    assert msg.control_id == "LAB-000001" and msg.version == "2.5"
    assert msg.value("PID-3[1].1") == "292059912304525"
    assert msg.value("PID-3[1].4.2") == "1.2.250.1.213.1.4.8"
    assert msg.value("PID-3[2].5") == "PI"
    assert msg.value("PID-5.2") == "Hélène"
    assert msg.value("OBX[3]-8") == "H"
    assert len(msg.all("OBX")) == 3


def test_escape_sequences_are_resolved():
    raw = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\rNTE|||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\r"
    msg, _ = parse(raw)
    assert msg.value("NTE-3") == "a|b^c&d~e\\f"


def test_lf_separators_are_accepted_with_a_warning():
    msg, findings = parse(oru().replace(b"\r", b"\n"))
    assert len(msg.all("OBX")) == 3
    assert [f.rule for f in findings] == ["hl7.segment-separator"]


def test_latin1_declared_in_msh18_is_decoded():
    raw = "MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5|||||FRA|8859/1\rPID|||||Hélène\r".encode("latin-1")
    msg, findings = parse(raw)
    assert findings == [] and msg.value("PID-5") == "Hélène"


def test_bytes_invalid_for_the_declared_charset_are_an_error():
    raw = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5|||||FRA|UNICODE UTF-8\rPID|||\xff\xfe\r"
    msg, [finding] = parse(raw)
    assert msg is None and finding.rule == "hl7.charset"


def test_missing_msh_and_bad_delimiters():
    assert parse(b"PID|||1\r")[1][0].rule == "hl7.msh"
    assert parse(b"MSH|^^^^|A\r")[1][0].rule == "hl7.delimiters"


def test_header_alone_is_read_even_when_the_body_is_not():
    raw = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|77|P|2.5|||||FRA|UNICODE UTF-8\rPID|||\xff\r"
    msg = parse_header(raw)
    assert msg is not None and msg.control_id == "77"


_TEXT = st.text(alphabet="ab^~&\\FSTREX.01", max_size=24)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=16))
@example(["a\\F\\b^c\\S\\d^e&f", "x~y\\T\\z", ""])
def test_field_and_component_values_read_as_value_does(fields):
    """What converters read per OBX, the field split once, is what ``value`` reads at each
    location (repetitions, components, subcomponents and escapes in any mix)."""
    raw = "MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\rOBX|" + "|".join(fields) + "\r"
    msg, _ = parse(raw.encode())
    [obx] = msg.all("OBX")
    for n in range(1, len(fields) + 2):
        assert msg.field_value(obx, n) == msg.value(f"OBX-{n}", obx)
        expected = [msg.value(f"OBX-{n}.{c}", obx) for c in (1, 2, 3)]
        assert msg.component_values(obx, n, 3) == expected


def test_hex_escapes_are_bytes_in_the_declared_character_set():
    utf8 = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5|||||FRA|UNICODE UTF-8\rNTE|||ros\\XC3A9\\\r"
    assert parse(utf8)[0].value("NTE-3") == "rosé"
    latin1 = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5|||||FRA|8859/1\rNTE|||ros\\XE9\\\r"
    assert parse(latin1)[0].value("NTE-3") == "rosé"
    # not valid in the declared set: kept as written, never turned into another character
    invalid = utf8.replace(b"\\XC3A9\\", b"\\XE9\\")
    assert parse(invalid)[0].value("NTE-3") == "ros\\XE9\\"


def test_every_repetition_of_a_field_is_read():
    raw = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\rOBX|1|FT|X^Y^LN||one~two\\R\\three~\r"
    msg, _ = parse(raw)
    assert msg.field_values(msg.first("OBX"), 5) == ["one", "two~three", ""]


def test_a_utf8_byte_order_mark_before_msh_is_read_past():
    """Some editors and Windows senders write one; MSH-18 still says how the text is read."""
    msg, findings = parse(b"\xef\xbb\xbf" + oru())
    assert findings == []
    assert msg.control_id == "LAB-000001" and msg.value("PID-5.2") == "Hélène"
    assert parse(b"\xef\xbb\xbfX" + oru())[0] is None  # anything else before MSH still refused
