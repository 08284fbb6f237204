from gateway.envelope import Code, Envelope, Party, Patient, SignatureInfo
from gateway.findings import Severity, warning


def sample() -> Envelope:
    return Envelope(
        document_id="1.2.3^42",
        source_kind="cda",
        content_type="application/hl7-cda+xml",
        sha256="ab" * 32,
        size=1234,
        sender="http:127.0.0.1",
        received_at="2026-11-01T09:30:00.000+00:00",
        trace_id="t1",
        set_id="1.2.3.set",
        version=2,
        replaces="1.2.3^41",
        action="replace",
        patient=Patient(
            ins="184127505612355",
            ins_system="1.2.250.1.213.1.4.8",
            family_name="MARTIN",
            local_ids=("IPP^^^&1.2&ISO",),
        ),
        type_code=Code("11502-2", "2.16.840.1.113883.6.1", "CR d'examens biologiques"),
        confidentiality=(
            Code("N", "2.16.840.1.113883.5.25"),
            Code("MASQUE_PS", "1.2.250.1.213.1.1.4.13"),
        ),
        authors=(
            Party(
                id="810001234567",
                id_system="1.2.250.1.71.4.2.1",
                organisation=Party(id="1750000001"),
            ),
        ),
        flags={"DESTDMP": True, "MASQUE_PS": False},
        metadata={"level": "3"},
        signature=SignatureInfo(
            "k1", "rsa-sha256", "2026-11-01T09:30:00+00:00", "xades-bes-detached"
        ),
        warnings=(warning("hl7.segment-separator", "LF used"),),
    )


def test_json_round_trip_keeps_every_field():
    env = sample()
    again = Envelope.from_json(env.to_json())
    assert again == env
    assert again.warnings[0].severity is Severity.WARNING
    assert again.authors[0].organisation.id == "1750000001"


def test_confidentiality_codes_are_a_set_of_codes():
    assert sample().confidentiality_codes == {"N", "MASQUE_PS"}


def test_absent_fields_are_left_out_of_json():
    env = Envelope("1", "cda", "x", "00", 0, "s", "t", "tr")
    assert "set_id" not in env.to_dict()
    assert Envelope.from_dict(env.to_dict()) == env


def test_fields_a_newer_gateway_added_are_ignored_when_read():
    data = sample().to_dict()
    data["future_field"] = "x"
    data["authors"][0]["organisation"]["future_field"] = {"nested": 1}
    assert Envelope.from_dict(data) == sample()
