"""The CDA R2 schema layer: structure the CI-SIS rules take for granted, each break minimal."""

import pytest

from gateway.adapters.cda.parser import parse
from gateway.adapters.hl7v2 import crbio
from gateway.adapters.hl7v2.parser import parse as parse_hl7v2
from gateway.findings import Report
from gateway.validators import cda_schema
from gateway.validators.cda import CdaValidator
from tests.conftest import FIXTURES
from tests.validators.cda_mutations import (
    CRBIO,
    CRIMG,
    H,
    insert_after,
    mutate,
    one,
    remove,
    set_attr,
    swap_with_next,
)

SDTC = "urn:hl7-org:sdtc"
LAB = "urn:oid:1.3.6.1.4.1.19376.1.3.2"


def schema_findings(raw: bytes):
    doc, findings = parse(raw)
    assert doc is not None, findings
    return cda_schema.validate(doc)


def judge(raw: bytes) -> Report:
    doc, findings = parse(raw)
    assert doc is not None, findings
    return Report.of(CdaValidator().validate(doc))


@pytest.mark.parametrize("fixture", [CRBIO, CRIMG], ids=["cr-bio", "cr-img"])
def test_fixtures_follow_the_schema(fixture):
    assert schema_findings(fixture.read_bytes()) == []


def test_cr_bio_converted_from_lab_results_follows_the_schema():
    msg, problems = parse_hl7v2((FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes())
    assert msg is not None, problems
    cda, _ = crbio.convert(msg, "mllp:test", "1.2.250.1.999.9.1")
    assert schema_findings(cda) == []


@pytest.mark.parametrize(
    ("change", "at", "expected"),
    [
        # the element found too late is named, with what the order allows there
        (swap_with_next("h:title"), "/ClinicalDocument/title", "confidentialityCode"),
        (swap_with_next("h:author"), "/ClinicalDocument/custodian", "author"),
        (swap_with_next("h:custodian"), "/ClinicalDocument/legalAuthenticator", "custodian"),
        (
            swap_with_next("h:recordTarget/h:patientRole/h:id[2]"),
            "/ClinicalDocument/recordTarget/patientRole/id[2]",
            "addr",
        ),
    ],
    ids=["title-after-effectiveTime", "author-first", "custodian-late", "patientRole-id-late"],
)
def test_elements_out_of_order_are_rejected_by_the_schema_alone(change, at, expected):
    raw = mutate(CRBIO, change)
    report = judge(raw)
    assert {f.rule for f in report.errors} == {"cda.schema"}
    [f] = report.errors
    assert f.location == at and f.layer == "cda-schema"
    assert "not expected" in f.message and expected in f.message
    element = at.rsplit("/", 1)[1].split("[")[0]
    assert raw.decode().splitlines()[f.line - 1].strip().startswith(f"<{element}")


def test_unknown_header_element_is_rejected():
    raw = mutate(CRBIO, insert_after("h:code", f"{{{H}}}subtitle"))
    [f] = judge(raw).errors
    assert f.rule == "cda.schema" and f.location == "/ClinicalDocument/subtitle"
    assert "subtitle" in f.message and "not expected" in f.message


@pytest.mark.parametrize(
    "name",
    [
        "id",
        "code",
        "effectiveTime",
        "confidentialityCode",
        "recordTarget",
        "author",
        "custodian",
        "component",
    ],
)
def test_missing_required_header_element_is_rejected(name):
    findings = schema_findings(mutate(CRBIO, remove(f"h:{name}")))
    assert findings, f"no schema finding without {name}"
    assert all(f.rule == "cda.schema" and f.is_error for f in findings)
    assert any(name in f.message for f in findings)


@pytest.mark.parametrize(
    ("xpath", "attribute", "value", "location"),
    [
        ("h:versionNumber", "value", "v2", "/ClinicalDocument/versionNumber"),
        ("h:author/h:time", "value", "yesterday", "/ClinicalDocument/author/time"),
        ("h:custodian//h:id", "root", "not an oid", None),
        (
            "h:component/h:structuredBody/h:component",
            "contextConductionInd",
            "yes",
            "/ClinicalDocument/component/structuredBody/component",
        ),
        ("h:confidentialityCode", "code", "N N", "/ClinicalDocument/confidentialityCode"),
        ("h:recordTarget/h:patientRole/h:id[1]", "nullFlavor", "NONE", None),
    ],
    ids=["INT", "TS", "II.root", "bl", "cs", "nullFlavor"],
)
def test_wrong_attribute_type_is_rejected(xpath, attribute, value, location):
    raw = mutate(CRBIO, set_attr(xpath, attribute, value))
    findings = [f for f in judge(raw).errors if f.rule == "cda.schema"]
    assert len(findings) == 1, findings
    message = findings[0].message
    assert attribute in message and value not in message and cda_schema.WITHHELD in message
    if location:
        assert findings[0].location == location


def test_a_birth_date_never_appears_in_a_finding_its_location_and_rule_do():
    """Findings reach senders, the rejected queue and operators' pages: no patient data."""
    raw = mutate(CRBIO, set_attr("h:recordTarget/h:patientRole/h:patient/h:birthTime",
        "value", "1984-12-05"))  # fmt: skip
    [f] = schema_findings(raw)
    assert "1984" not in f.message and "12-05" not in f.message
    assert f.location == "/ClinicalDocument/recordTarget/patientRole/patient/birthTime"
    assert "attribute 'value'" in f.message and "[facet 'pattern']" in f.message
    assert "The value '(value withheld)' is not accepted by the pattern '[0-9]{1,8}" in f.message


@pytest.mark.parametrize(
    "message",
    [
        "Element 'birthTime', attribute 'value': [facet 'pattern'] The value 'DUPONT' is not "
        "accepted by the pattern 'x'.",
        "Element 'name', attribute 'use': [facet 'enumeration'] The value 'DUPONT' is not an "
        "element of the set {'L', 'P'}.",
        "Element 'versionNumber', attribute 'value': 'DUPONT' is not a valid value of the "
        "atomic type 'int'.",
        "Element 'given': The actual value 'DUPONT' does not match the fixed value constraint 'x'.",
        "Element 'value', attribute 'value': [facet 'maxLength'] The value 'DUPONT' has a "
        "length of '6'; this exceeds the allowed maximum length of '5'.",
        "Element 'x': The value 'it's DUPONT' is not accepted by the pattern 'y' is not "
        "accepted by the pattern 'z'.",
        "Element 'x': Duplicate key-sequence ['DUPONT', '12'] in unique identity-constraint 'u'.",
    ],
    ids=["pattern", "enumeration", "type", "fixed", "length", "quotes-inside", "key"],
)
def test_every_value_libxml2_quotes_is_withheld(message):
    kept = cda_schema.withhold_values(message)
    assert "DUPONT" not in kept and cda_schema.WITHHELD in kept
    assert kept.startswith("Element '")


def test_unknown_attribute_in_the_hl7_namespace_is_rejected():
    [f] = schema_findings(mutate(CRBIO, set_attr("h:author/h:time", "precision", "minute")))
    assert "precision" in f.message and f.location == "/ClinicalDocument/author/time"


def test_both_bodies_at_once_are_rejected():
    def second_body(cd):
        body = one(cd, "h:component/h:structuredBody")
        body.addprevious(body.makeelement(f"{{{H}}}nonXMLBody"))

    findings = schema_findings(mutate(CRBIO, second_body))
    assert findings and findings[0].location.startswith("/ClinicalDocument/component")


def test_extension_namespaces_are_accepted_where_profiles_put_them():
    def extended(cd):
        patient = one(cd, "h:recordTarget/h:patientRole/h:patient")
        one(patient, "h:birthTime").addnext(
            patient.makeelement(f"{{{SDTC}}}deceasedInd", value="false")
        )
        time = one(cd, "h:documentationOf/h:serviceEvent/h:effectiveTime")
        time.addprevious(time.makeelement(f"{{{LAB}}}statusCode", code="completed"))
        one(patient, "h:administrativeGenderCode").set(f"{{{SDTC}}}valueSet", "1.2.250.1.1")
        obs = one(cd, ".//h:observation")
        obs.append(obs.makeelement(f"{{{SDTC}}}id", root="1.2.3"))

    assert schema_findings(mutate(CRBIO, extended)) == []


def test_entries_are_lax_but_their_data_types_are_checked():
    # An element the schema does not declare inside an entry is accepted …
    raw = mutate(CRBIO, insert_after(".//h:observation/h:code", f"{{{H}}}priorityCode"))
    assert schema_findings(raw) == []
    # … but a value that names a data type must have that type's lexical form.
    [f] = schema_findings(mutate(CRBIO, set_attr(".//h:observation/h:value", "value", "5,4")))
    assert "5,4" not in f.message and f.location.endswith("/observation/value")


def test_errors_in_a_wrapped_document_point_at_its_own_lines():
    wrapped = (
        b'<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">\n'
        b"<xsl:template match='/'/>\n"
        + mutate(CRBIO, swap_with_next("h:title")).split(b"?>", 1)[1]
        + b"\n</xsl:stylesheet>"
    )
    [f] = schema_findings(wrapped)
    assert f.location == "/ClinicalDocument/title"
    assert wrapped.decode().splitlines()[f.line - 1].strip().startswith("<title")


def test_the_schema_is_compiled_once():
    assert cda_schema.schema() is cda_schema.schema()
