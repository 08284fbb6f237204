import pytest

from gateway.adapters.cda import intake
from gateway.adapters.cda.metadata import extract
from gateway.adapters.cda.parser import CdaLimits, parse
from gateway.outcome import Rejected
from gateway.validators.cda import CdaValidator
from tests.conftest import FIXTURES


def test_header_fields_of_the_crbio_fixture():
    doc, _ = parse((FIXTURES / "cda/crbio_glycemia.xml").read_bytes())
    f = extract(doc)
    assert f["document_id"] == "1.2.250.1.999.1.1.20261101.4711"
    assert f["set_id"] == "1.2.250.1.999.1.2.20261101.4711"
    assert f["version"] == 1 and f["action"] == "create" and f["replaces"] is None
    assert f["patient"].ins == "184127505612355"
    assert f["patient"].ins_system == "1.2.250.1.213.1.4.8"
    assert f["patient"].birth_date == "19841205"
    assert f["type_code"].code == "11502-2"
    assert [c.code for c in f["confidentiality"]] == ["N"]
    assert f["authors"][0].id == "810001234567"
    assert f["authors"][0].organisation.id == "1750000001"
    assert f["custodian"].id == "1750000001"
    assert f["service_start"] == "20261101071500+0100"
    assert f["facility_type_code"].code == "SA29"
    assert f["metadata"]["level"] == "3"


def test_replacement_masking_and_level1_are_normalised():
    doc, _ = parse((FIXTURES / "cda/crimg_level1_replacement.xml").read_bytes())
    f = extract(doc)
    assert f["document_id"] == "1.2.250.1.999.1.1.20261102^IMG-88"
    assert f["set_id"] == "1.2.250.1.999.1.2.20261102^IMG-88" and f["version"] == 2
    assert f["replaces"] == "1.2.250.1.999.1.1.20261102^IMG-87" and f["action"] == "replace"
    assert [(c.code, c.system) for c in f["confidentiality"]] == [
        ("R", "2.16.840.1.113883.5.25"),
        ("MASQUE_PS", "1.2.250.1.213.1.1.4.13"),
        ("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13"),
    ]
    assert f["patient"].ins == "285072A01234561"  # Corsica, department 2A
    assert f["format_code"].code == "urn:ihe:iti:xds-sd:pdf:2008"
    assert f["practice_setting_code"].code == "AMBULATOIRE"
    assert f["facility_type_code"].code == "SA08"
    assert f["metadata"]["level"] == "1" and f["local_codes"] == ()


def test_lab_report_format_code_and_local_codes_flagged():
    raw = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    doc, _ = parse(raw)
    assert extract(doc)["format_code"].code == "urn:ihe:lab:xd-lab:2008"
    doc, _ = parse(raw.replace(b'code="SA29"', b'code="LABO-LOCAL"'))
    f = extract(doc)
    assert f["facility_type_code"].code == "LABO-LOCAL"  # kept as sent
    assert f["local_codes"] == ("facility_type_code",)


CORSICAN = "184122A01234546"


@pytest.mark.parametrize(
    "written", [CORSICAN.lower(), f"{CORSICAN}&#10;", f"{CORSICAN}&#9;"], ids=["2a", "LF", "tab"]
)
def test_the_envelope_ins_is_the_validated_string_or_there_is_no_envelope(written):
    fixture = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    canonical = fixture.replace(b'extension="184127505612355"', f'extension="{CORSICAN}"'.encode())
    document, _ = intake.read(canonical, CdaLimits(), CdaValidator())
    assert document.fields["patient"].ins == CORSICAN
    variant = fixture.replace(b'extension="184127505612355"', f'extension="{written}"'.encode())
    refused, _ = intake.read(variant, CdaLimits(), CdaValidator())
    assert isinstance(refused, Rejected)
    assert [f.rule for f in refused.report.errors] == ["ins.format"]
