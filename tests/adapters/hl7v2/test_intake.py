"""CDA-over-HL7v2 rules and the raw ORU^R01 → CR-BIO conversion, on messages written here."""

from __future__ import annotations

import base64

from lxml import etree

from gateway.adapters.cda.parser import CdaLimits
from gateway.adapters.hl7v2 import intake, report_time
from gateway.document import Document
from gateway.outcome import Rejected
from gateway.validators.cda import CdaValidator
from tests.conftest import FIXTURES

INS = "184127505612355"
PID = (
    f"PID|||{INS}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||MARTIN^Louis||19841205|M"
    + "|" * 24
    + "VALI"
)


def cda(extra: bytes = b"") -> bytes:
    raw = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    return raw.replace(b"<versionNumber", extra + b"<versionNumber") if extra else raw


def carrying(document: bytes, status: str = "F", meta: str = "", pid: str = PID) -> bytes:
    b64 = base64.b64encode(document).decode()
    return (
        "MSH|^~\\&|LAB|LABO|GW|DMP|20261101||ORU^R01^ORU_R01|X1|P|2.5|||||FRA|UNICODE UTF-8\r"
        f"{pid}\r"
        "OBR|1||ORD-1^LAB|11502-2^CR d'examens biologiques^LN\r"
        f"OBX|1|ED|11502-2^CR^LN||^TEXT^XML^Base64^{b64}||||||{status}\r"
        "PRT||UC||RCT^^HL70912|||||||||||^^X.400^dr.hoda@test.mssante.fr\r"
        f"{meta}"
    ).encode()


def read(raw: bytes, sender: str = "lab-1"):
    return intake.read(raw, sender, CdaLimits(), CdaValidator())


def errors(result) -> list[str]:
    assert isinstance(result, Rejected)
    return [f"{f.rule}@{f.location}" for f in result.report.errors]


def meta(n: int, name: str, value: str) -> str:
    return f"OBX|{n}|CE|{name}^{name}^MetaDMPMSS||{value}^^HL70136||||||F\r"


def test_metadmpmss_flags_become_envelope_flags_and_masking_codes():
    doc = read(carrying(cda(), meta=meta(2, "MASQUE_PS", "Y") + meta(3, "DESTDMP", "N")))
    assert isinstance(doc, Document)
    assert doc.fields["flags"] == {"MASQUE_PS": True, "DESTDMP": False}
    assert ("MASQUE_PS", "1.2.250.1.213.1.1.4.13") in {
        (c.code, c.system) for c in doc.fields["confidentiality"]
    }
    assert doc.fields["metadata"]["mss_recipients"] == "dr.hoda@test.mssante.fr"
    assert doc.fields["action"] == "create"


def test_metadmpmss_value_other_than_y_or_n_is_an_error_naming_the_obx():
    assert errors(read(carrying(cda(), meta=meta(2, "DESTMSSANTEPS", "OUI")))) == [
        "hl7.metadmpmss.value@OBX[2]-5.1"
    ]


def test_conflicting_repeated_flag_is_refused_at_its_second_obx():
    masked_then_not = meta(2, "MASQUE_PS", "Y") + meta(3, "MASQUE_PS", "N")
    assert errors(read(carrying(cda(), meta=masked_then_not))) == [
        "hl7.metadmpmss.repeated@OBX[3]-5.1"
    ]
    # an older spelling is the same flag
    spellings = meta(2, "INVISIBLE_REP_LEGAUX", "N") + meta(
        3, "INVISIBLE_REPRESENTANTS_LEGAUX", "Y"
    )
    assert errors(read(carrying(cda(), meta=spellings))) == ["hl7.metadmpmss.repeated@OBX[3]-5.1"]


def test_flag_repeated_with_the_same_value_is_accepted():
    doc = read(carrying(cda(), meta=meta(2, "MASQUE_PS", "Y") + meta(3, "MASQUE_PS", "Y")))
    assert isinstance(doc, Document) and doc.fields["flags"] == {"MASQUE_PS": True}


def test_replacement_must_name_the_replaced_document():
    assert errors(read(carrying(cda(), status="C"))) == ["hl7.obx.replacement@OBX[1]-11"]
    rplc = (
        b'<relatedDocument typeCode="RPLC"><parentDocument><id root="1.2.3.4"/>'
        b"</parentDocument></relatedDocument>"
    )
    replacing = cda().replace(b"<componentOf>", rplc + b"<componentOf>")
    doc = read(carrying(replacing, status="C"))
    assert doc.fields["action"] == "replace" and doc.fields["replaces"] == "1.2.3.4"
    assert errors(read(carrying(replacing, status="F"))) == ["hl7.obx.replacement@OBX[1]-11"]


def test_deletion_targets_the_document_it_carries_not_the_one_it_replaced():
    rplc = (
        b'<relatedDocument typeCode="RPLC"><parentDocument><id root="1.2.3.4"/>'
        b"</parentDocument></relatedDocument>"
    )
    doc = read(carrying(cda().replace(b"<componentOf>", rplc + b"<componentOf>"), status="D"))
    assert isinstance(doc, Document)
    assert doc.fields["action"] == "delete" and doc.fields["replaces"] is None
    assert read(carrying(cda(), status="D")).fields["action"] == "delete"
    assert errors(read(carrying(cda(), status="P"))) == ["hl7.obx.status@OBX[1]-11"]


def test_pid_and_cda_must_name_the_same_patient():
    other = PID.replace(INS, "292059912304525")
    assert errors(read(carrying(cda(), pid=other))) == ["hl7.pid.cda-patient@PID-3"]


def test_pid_and_cda_must_name_the_ins_under_the_same_oid():
    """The same digits under the test OID and under the INS-NIR OID are two identities."""
    test_oid = PID.replace(
        "ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8", "ASIP-SANTE-INS-NIR-TEST&1.2.250.1.213.1.4.10"
    )
    result = read(carrying(cda(), pid=test_oid))
    assert errors(result) == ["hl7.pid.cda-patient@PID-3"]
    (finding,) = result.report.errors
    assert "1.2.250.1.213.1.4.10" in finding.message and "recordTarget" in finding.message


def test_identity_must_be_qualified_to_carry_the_ins():
    assert errors(read(carrying(cda(), pid=PID.replace("VALI", "PROV")))) == [
        "hl7.pid.identity-reliability@PID-32"
    ]


def test_mdm_needs_its_txa_and_a_document():
    mdm = carrying(cda()).replace(b"ORU^R01^ORU_R01", b"MDM^T02^MDM_T02")
    assert "hl7.segment.required@TXA" in errors(read(mdm))
    assert "hl7.segment.required@EVN" in errors(read(mdm))


def test_placeholder_text_is_never_filed():
    text = "Document médical au format CDA niveau 1".encode()
    assert errors(read(carrying(text)))[0] == "hl7.obx.not-cda@OBX[1]-5.5"


# --- raw ORU^R01 → CR-BIO ------------------------------------------------------------------


def lab(status: str = "F", reported: str = "20261101093000", control: str = "LAB-1") -> bytes:
    return (
        f"MSH|^~\\&|LAB-SIL|LABO-TILLEULS|GW|DMP|{reported}||ORU^R01^ORU_R01|{control}|P|2.5\r"
        f"{PID}\r"
        "ORC|RE|CMD-1^PRESC|LAB-77^LABO\r"
        f"OBR|1|CMD-1^PRESC|LAB-77^LABO|24323-8^Bilan^LN|||20261101071500|||||||||||||||{reported}|||{status}\r"
        f"OBX|1|NM|14749-6^Glucose^LN||5.4|mmol/L^mmol/L^UCUM|4.1-5.9|N|||{status}\r"
        f"OBX|2|ST|5778-6^Couleur urine^LN||jaune pâle||||||{status}\r"
    ).encode()


def test_raw_oru_becomes_a_valid_crbio_with_the_message_beside_it():
    doc = read(lab())
    assert isinstance(doc, Document), doc
    root = etree.fromstring(doc.payload)
    ns = {"h": "urn:hl7-org:v3"}
    assert "1.2.250.1.213.1.1.1.55" in root.xpath("h:templateId/@root", namespaces=ns)
    observations = root.xpath("//h:act/h:entryRelationship/h:observation", namespaces=ns)
    assert [o.find("h:code", ns).get("code") for o in observations] == ["14749-6", "5778-6"]
    value = observations[0].find("h:value", ns)
    assert (value.get("value"), value.get("unit")) == ("5.4", "mmol/L")
    assert root.xpath("string(//h:tr[@ID='obs-2']/h:td[2])", namespaces=ns) == "jaune pâle"
    assert doc.attachments[0].role == "source-message" and doc.attachments[0].data == lab()
    assert doc.fields["patient"].ins == INS


def test_conversion_is_deterministic_so_a_resend_is_the_same_document():
    assert read(lab()).payload == read(lab()).payload


def test_preliminary_then_final_results_are_versions_of_one_document():
    prelim = read(lab("P", "20261101080000", "LAB-1"))
    final = read(lab("F", "20261101093000", "LAB-2"))
    assert prelim.fields["set_id"] == final.fields["set_id"]
    assert prelim.fields["document_id"] != final.fields["document_id"]
    assert 1 <= prelim.fields["version"] < final.fields["version"]


def test_observation_without_loinc_is_refused():
    raw = lab().replace(b"14749-6^Glucose^LN", b"GLU^Glucose^L")
    assert errors(read(raw)) == ["crbio.loinc@OBX[1]-3"]


def test_local_times_get_the_french_offset():
    assert report_time.ts("20260115093000") == "20260115093000+0100"
    assert report_time.ts("20260715093000") == "20260715093000+0200"
    assert report_time.ts("20260715093000+0000") == "20260715093000+0000"
    assert report_time.ts("19841205") == "19841205"


def test_conversion_writes_what_lxml_would_write_even_for_values_needing_escapes():
    # The converter writes its XML as text (xmlwriter, f-strings): parsing it and letting lxml
    # serialise it again must give the same bytes, so the escaping is lxml's own.
    def obx(n: int, kind: str, code: str, value: str, unit="", ref="", flag="", when="") -> str:
        fields = ["OBX", str(n), kind, code, "", value, unit, ref, flag, "", "", "F", "", "", when]
        return "|".join(fields) + "\r"

    specials = (
        obx(3, "NM", '2160-0^Cr\\T\\a <b> "c"^LN', "9.1", "mg/L&x^mg/L^UCUM", "6.0 - 12.0", "H")
        + obx(4, "ST", "5778-6^Couleur^LN", "a<b & \"c\"\t'd'", ref="> 5", flag="A")
        + obx(5, "NM", "2823-3^K^LN", "5.9", ref="<5", flag="<", when="  ")
        + obx(6, "CE", "5778-6^Aspect^LN", 'TRB&1^Trouble "x"^LN')
    ).encode()
    for raw in (lab(), lab() + specials):
        doc = read(raw)
        assert isinstance(doc, Document), doc
        tree = etree.fromstring(doc.payload)
        assert etree.tostring(tree, xml_declaration=True, encoding="UTF-8") == doc.payload
    root = etree.fromstring(doc.payload)
    ns = {"h": "urn:hl7-org:v3"}
    assert root.xpath("string(//h:tr[@ID='obs-4']/h:td[2])", namespaces=ns) == "a<b & \"c\"\t'd'"
    assert root.xpath("string(//h:tr[@ID='obs-3']/h:td[1])", namespaces=ns) == 'Cr&a <b> "c"'


def test_hex_escaped_control_character_is_refused_not_raised():
    raw = lab().replace(b"jaune p\xc3\xa2le", b"jaune\\X01\\p\xc3\xa2le")
    assert errors(read(raw)) == ["crbio.xml-character@"]
