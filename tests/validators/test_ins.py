import pytest

from gateway.validators.ins import INS_NIR, check_ins, nir_key, nir_key_is_valid


@pytest.mark.parametrize(
    "ins",
    ["184127505612355", "279035121518989", "277076322082910", "292059912304525"],
)
def test_valid_keys(ins):
    assert nir_key_is_valid(ins)


def test_corsica_departments_are_read_as_19_and_18():
    nir_2a = "185072A012345"
    nir_2b = "185072B012345"
    assert nir_key(nir_2a) == 97 - int("1850719012345") % 97
    assert nir_key(nir_2b) == 97 - int("1850718012345") % 97
    assert nir_key_is_valid(nir_2a + f"{nir_key(nir_2a):02d}")
    assert not nir_key_is_valid(nir_2a + f"{nir_key(nir_2b):02d}")


def test_one_mistyped_digit_is_caught():
    assert not nir_key_is_valid("184127505612455")
    [finding] = check_ins("184127505612455", INS_NIR, "PID-3[1].1", "hl7v2")
    assert finding.rule == "ins.nir-key" and finding.location == "PID-3[1].1"


@pytest.mark.parametrize(
    ("value", "oid", "rule"),
    [
        ("184127505612355", "1.2.3.4", "ins.oid"),
        ("", INS_NIR, "ins.missing"),
        ("18412750561235", INS_NIR, "ins.format"),
        ("984127505612355", INS_NIR, "ins.format"),
    ],
)
def test_other_failures_name_their_rule(value, oid, rule):
    [finding] = check_ins(value, oid, "", "cda")
    assert finding.rule == rule and finding.is_error


def test_valid_ins_has_no_findings():
    assert check_ins("184127505612355", INS_NIR, "", "cda") == []


CORSICAN = "184122A01234546"  # 2A, with its key


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (CORSICAN.lower(), "lower case"),
        ("184127505612355\n", "line breaks"),
        (" 184127505612355", "spaces"),
        ("1841275056123 55", "spaces"),
    ],
    ids=["lowercase-2a", "trailing-newline", "leading-space", "inner-space"],
)
def test_an_ins_is_judged_exactly_as_written_never_normalised(value, said):
    """Accepting these would file the document under a key differing from the patient's."""
    assert nir_key_is_valid(CORSICAN)
    assert not nir_key_is_valid(value)
    [finding] = check_ins(value, INS_NIR, "PID-3[1].1", "hl7v2")
    assert finding.rule == "ins.format" and said in finding.message and finding.fix
    assert value.strip() not in finding.message  # the INS is patient data: never quoted
