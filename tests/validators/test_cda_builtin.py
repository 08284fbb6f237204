"""Built-in tier: each rule has a minimal failing fixture, and names itself precisely."""

import pytest

from gateway.adapters.cda.parser import parse
from gateway.findings import Report
from gateway.validators.cda import CdaValidator
from tests.validators.cda_mutations import (
    ALSO_SCHEMA,
    CRBIO,
    CRIMG,
    HEADER_MUTATIONS,
    MODEL_MUTATIONS,
    mutate,
    remove,
    set_attr,
)

VALIDATOR = CdaValidator()


def judge(raw: bytes) -> Report:
    doc, findings = parse(raw)
    assert doc is not None, findings
    return Report.of(VALIDATOR.validate(doc))


@pytest.mark.parametrize("fixture", [CRBIO, CRIMG], ids=["cr-bio", "cr-img"])
def test_fixtures_are_valid_without_findings(fixture):
    assert judge(fixture.read_bytes()).findings == ()


MUTATIONS = {**HEADER_MUTATIONS, **MODEL_MUTATIONS}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_rule_rejects_its_mutation_and_only_it(name):
    fixture, change, rule = MUTATIONS[name]
    report = judge(mutate(fixture, change))
    assert not report.valid
    structural = {"cda.schema"} if name in ALSO_SCHEMA else set()
    assert {f.rule for f in report.errors} == {rule} | structural
    for f in report.errors:
        assert f.location.startswith("/ClinicalDocument") and f.line and f.layer and f.message


def test_error_location_points_at_the_element_and_its_line():
    raw = mutate(CRBIO, set_attr("h:languageCode", "code", "en-US"))
    [f] = judge(raw).errors
    assert f.location == "/ClinicalDocument/languageCode"
    assert raw.decode().splitlines()[f.line - 1].strip().startswith("<languageCode")


@pytest.mark.parametrize(
    ("xpath", "rule"),
    [
        ("h:componentOf//h:healthCareFacility/h:code", "cda.header.facilityType"),
        ("h:documentationOf//h:standardIndustryClassCode", "cda.header.practiceSetting"),
    ],
)
def test_unknown_local_codes_are_warnings_not_rejections(xpath, rule):
    report = judge(mutate(CRBIO, set_attr(xpath, "code", "LOCAL-42")))
    assert report.valid
    [w] = report.warnings
    assert w.rule == rule and "LOCAL-42" in w.message


def test_masking_codes_are_accepted_and_unknown_translation_is_not():
    assert judge(CRIMG.read_bytes()).valid  # carries MASQUE_PS and INVISIBLE_PATIENT
    raw = mutate(CRIMG, set_attr("h:confidentialityCode/h:translation[1]", "code", "MASQUE_TOUT"))
    assert {f.rule for f in judge(raw).errors} == {"cda.header.confidentialityCode"}


def test_a_document_cannot_replace_itself():
    def self_replacing(cd):
        own = cd.find("{urn:hl7-org:v3}id")
        parent = cd.find(".//{urn:hl7-org:v3}parentDocument/{urn:hl7-org:v3}id")
        parent.attrib.update(own.attrib)

    [f] = judge(mutate(CRIMG, self_replacing)).errors
    assert f.rule == "cda.header.relatedDocument" and "itself" in f.message


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (remove("h:legalAuthenticator"), "cda.header.legalAuthenticator"),
        (remove("h:setId"), "cda.header.setId"),
        (set_attr("h:effectiveTime", "value", "20261101093000"), "cda.header.effectiveTime"),
    ],
    ids=["no-legalAuthenticator", "no-setId", "no-timezone"],
)
def test_omissions_of_first_generation_documents_are_flagged_not_rejected(change, rule):
    report = judge(mutate(CRBIO, change))
    assert report.valid
    assert [w.rule for w in report.warnings] == [rule]


def test_non_ascii_base64_in_a_level_1_body_is_a_finding_not_a_crash():
    """Found by the cda_parser fuzz target: a non-ASCII character in nonXMLBody/text."""
    raw = CRIMG.read_bytes().replace(
        b'representation="B64">JVBER', 'representation="B64">é'.encode() + b"JVBER"
    )
    report = judge(raw)
    assert {f.rule for f in report.errors} == {"cda.body.nonXMLBody"}


def _value_without(*names: str, **attrs: str):
    def change(cd):
        value = cd.find(".//{urn:hl7-org:v3}observation/{urn:hl7-org:v3}value")
        for name in names:
            value.attrib.pop(name)
        value.attrib.update(attrs)

    return change


@pytest.mark.parametrize(
    "change",
    [_value_without("value", "unit", nullFlavor="NA"), _value_without("unit")],
    ids=["no value, nullFlavor NA", "no unit: dimensionless"],
)
def test_lab_results_the_pack_accepts_are_accepted(change):
    """A PQ saying why it has no value, or one without unit (HL7's "1"): the national tool
    takes both; this tier refused them even with the pack configured."""
    assert judge(mutate(CRBIO, change)).valid
