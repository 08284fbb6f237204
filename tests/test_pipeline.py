"""The pure pipeline: decisions without any I/O."""

import base64
import dataclasses

import pytest

from gateway.outcome import Accepted, Rejected, RejectionKind
from gateway.pipeline import Tools, ingest
from gateway.routing import loader
from gateway.signing.keystore import CERT_FILE, KEY_FILE, load_pem
from gateway.signing.xades import XadesSigner
from gateway.submission import Submission
from tests.conftest import FIXTURES, ROOT


@pytest.fixture(scope="module")
def tools(keys_dir):
    return Tools(
        signer=XadesSigner(load_pem(keys_dir / KEY_FILE, keys_dir / CERT_FILE)),
        routing=loader.load(ROOT / "routing.yaml"),
    )


def submit(raw: bytes, tools) -> Accepted | Rejected:
    return ingest(Submission(raw=raw, transport="http", sender="lab-1"), tools)


def cda() -> bytes:
    return (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()


def oru() -> bytes:
    return (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()


def test_valid_cda_is_accepted_signed_hashed_and_routed(tools):
    out = submit(cda(), tools)
    assert isinstance(out, Accepted)
    env = out.envelope
    assert env.document_id == "1.2.250.1.999.1.1.20261101.4711"
    assert env.patient.ins == "184127505612355"
    assert env.sender == "lab-1" and env.source_kind == "cda"
    assert env.size == len(out.payload)
    assert env.signature is not None and env.signature.form == "xades-bes-detached"
    # a CR-BIO sent directly: the record, the patient's notification, biology statistics
    assert out.destinations == ("patient-record", "lab-statistics")


def test_wrong_nir_key_rejects_with_the_rule(tools):
    out = submit(cda().replace(b"184127505612355", b"184127505612356"), tools)
    assert isinstance(out, Rejected) and out.kind is RejectionKind.INVALID
    assert [f.rule for f in out.report.errors] == ["ins.nir-key"]


def test_raw_lab_result_message_gets_a_stable_id_from_its_report(tools):
    first = submit(oru(), tools)
    again = submit(oru(), tools)
    assert isinstance(first, Accepted)
    assert first.envelope.document_id == again.envelope.document_id
    assert first.envelope.document_id.startswith("2.25.")
    other = ingest(Submission(raw=oru(), transport="mllp", sender="lab-2"), tools)
    assert other.envelope.document_id != first.envelope.document_id


def test_hl7v2_carrying_a_cda_yields_the_cda(tools):
    b64 = base64.b64encode(cda()).decode()
    raw = (
        "MSH|^~\\&|LAB|LABO|GW|DMP|20261101||ORU^R01^ORU_R01|X1|P|2.5|||||FRA|UNICODE UTF-8\r"
        "PID|||184127505612355^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||MARTIN^Louis"
        + "|"
        * 27
        + "VALI\r"
        "OBR|1||ORD-1^LAB|11502-2^CR d'examens biologiques^LN\r"
        f"OBX|1|ED|11502-2^CR d'examens biologiques^LN||^TEXT^XML^Base64^{b64}||||||F\r"
    ).encode()
    out = submit(raw, tools)
    assert isinstance(out, Accepted)
    assert out.envelope.document_id == "1.2.250.1.999.1.1.20261101.4711"
    assert out.envelope.source_kind == "hl7v2"
    assert out.payload == cda()


def test_unsupported_message_type_is_an_ar_rejection(tools):
    out = submit(oru().replace(b"ORU^R01^ORU_R01", b"ADT^A01^ADT_A01"), tools)
    assert isinstance(out, Rejected) and out.kind is RejectionKind.UNSUPPORTED
    assert out.report.errors[0].rule == "hl7.message-type"


def test_unknown_format_is_unreadable(tools):
    out = submit(b"%PDF-1.7 not a document we take", tools)
    assert isinstance(out, Rejected) and out.kind is RejectionKind.UNREADABLE


@pytest.mark.parametrize(
    ("before", "after", "rule"),
    [
        # an id no AMQP message id can carry (255 bytes), which PostgreSQL would refuse too
        (
            b'<id root="1.2.250.1.999.1.1.20261101.4711"/>',
            b'<id root="1.2.250.1.999.1.1" extension="%s"/>' % (b"X" * 300),
            "envelope.too-long.document_id",
        ),
        # a set id longer than the record store's column (256)
        (
            b'<setId root="1.2.250.1.999.1.2.20261101.4711"/>',
            b'<setId root="1.2.250.1.999.1.2" extension="%s"/>' % (b"S" * 300),
            "envelope.too-long.set_id",
        ),
    ],
)
def test_an_identifier_longer_than_the_gateway_can_carry_is_refused_at_once(
    tools, before, after, rule
):
    raw = cda()
    assert before in raw
    out = submit(raw.replace(before, after, 1), tools)
    assert isinstance(out, Rejected) and out.kind is RejectionKind.INVALID
    assert rule in [f.rule for f in out.report.errors]
    finding = next(f for f in out.report.errors if f.rule == rule)
    assert finding.location.startswith("/ClinicalDocument/") and finding.fix


def test_a_test_ins_is_refused_where_real_records_are_kept(tools):
    """GATEWAY_TEST_INS=refuse: the ANS examples' test OID is accepted for development only;
    its digits may be a real patient's."""
    raw = cda().replace(
        b'root="1.2.250.1.213.1.4.8" extension="184127505612355"',
        b'root="1.2.250.1.213.1.4.10" extension="184127505612355"',
    )
    assert isinstance(submit(raw, tools), Accepted)  # the default: accepted
    production = dataclasses.replace(
        tools, checks=dataclasses.replace(tools.checks, accept_test_ins=False)
    )
    out = submit(raw, production)
    assert isinstance(out, Rejected) and out.kind is RejectionKind.INVALID
    [finding] = out.report.errors
    assert finding.rule == "ins.test-oid" and finding.location.endswith("patientRole/id")
    assert isinstance(submit(cda(), production), Accepted)  # a real INS still is
