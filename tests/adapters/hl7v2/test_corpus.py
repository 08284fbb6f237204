"""The ANS published examples (../shared/corpus/hl7v2), each with its expected outcome.

Real CDA in the document OBX → accepted (warnings for LF, the non-ASCII MSH-2 tilde and the
truncated mail body are fine). Placeholder text in a document OBX → AE naming that OBX. Known
corpus defects: the V1.2 and LPS V1.0 examples use INS 276037510669380 whose NIR key is wrong,
and LPS messageDocB64 carries a CDA about another patient.
"""

from __future__ import annotations

import pytest

from gateway import pipeline
from gateway.adapters.cda import intake as cda_intake
from gateway.adapters.cda.parser import CdaLimits
from gateway.adapters.hl7v2 import ack, intake
from gateway.adapters.hl7v2.parser import parse
from gateway.broker.message import DocumentMessage
from gateway.document import Document
from gateway.outcome import Receipt, ReceiptStatus, Rejected, RejectionKind
from gateway.records.store import DocumentQuery, RecordStore
from gateway.submission import Submission
from gateway.validators.cda import CdaValidator
from tests.adapters.hl7v2.test_ack import NOW

V12 = "TRANS_DOC_CDA_HL7V2_V1.2"
V20 = "TRANS_DOC_CDA_HL7V2_V2.0"
LPS = "Trans_LPS_CDA_MSSante_V1.0"
PLACEHOLDER_1 = ["hl7.obx.not-cda@OBX[1]-5.5"]
PLACEHOLDER_2 = ["hl7.obx.not-cda@OBX[1]-5.5", "hl7.obx.not-cda@OBX[2]-5.5"]
BAD_KEY = "ins.nir-key@PID-3[1].1"

# path → (expected ACK code, errors that must be reported as rule@location, document ids)
EXPECTED: dict[str, tuple[str, list[str], list[str]]] = {
    f"{V12}/ORU/message.hl7": ("AE", [BAD_KEY, *PLACEHOLDER_1], []),
    f"{V12}/MDM/message.hl7": ("AE", [BAD_KEY, *PLACEHOLDER_1], []),
    f"{V20}/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N1_N3.hl7": (
        "AE",
        PLACEHOLDER_2,
        [],
    ),
    f"{V20}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_N3.er7": ("AE", PLACEHOLDER_2, []),
    f"{V20}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7": (
        "AA",
        [],
        ["1.2.250.1.213.1.1.12", "1.2.250.1.213.1.1.11"],
    ),
    f"{V20}/ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N1_N3.er7": ("AE", PLACEHOLDER_2, []),
    f"{V20}/ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N1_Base64_N3_Base64.er7": (
        "AA",
        [],
        ["1.2.250.1.213.1.1.12", "1.2.250.1.213.1.1.11"],
    ),
    f"{V20}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7": (
        "AE",
        PLACEHOLDER_1,
        [],
    ),
    f"{V20}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7": (
        "AA",
        [],
        ["1.2.250.1.71.4.2.2.120456789^A71024000081"],
    ),
    f"{V20}/MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7": ("AE", PLACEHOLDER_1, []),
    f"{V20}/MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7": ("AE", PLACEHOLDER_1, []),
    f"{LPS}/MDM/message.hl7": ("AE", [BAD_KEY, *PLACEHOLDER_1], []),
    f"{LPS}/MDM/messageDocB64.hl7": ("AE", [BAD_KEY, "hl7.pid.cda-patient@PID-3"], []),
    f"{LPS}/Transmission initiale MDM/message_MDM__LPS_MSS_CR_Radio_INIT_N1.er7": (
        "AE",
        PLACEHOLDER_1,
        [],
    ),
    f"{LPS}/Transmission initiale MDM/message_MDM__LPS_MSS_CR_Radio_INIT_N1_Base64.er7": (
        "AA",
        [],
        ["1.2.250.1.71.4.2.2.120456789^A71024000081"],
    ),
    f"{LPS}/Remplacement MDM/message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7": ("AE", PLACEHOLDER_1, []),
    f"{LPS}/Suppression MDM/message_MDM__LPS_MSS_CR_Radio_DEL_N1.er7": ("AE", PLACEHOLDER_1, []),
}

pytestmark = pytest.mark.shared


def corpus_messages(shared):
    root = shared / "corpus" / "hl7v2"
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and p.read_bytes()[:3] == b"MSH" and b"MSA|" not in p.read_bytes()[:400]
    }


def test_every_document_message_of_the_corpus_has_an_expected_outcome(shared):
    found = {
        k
        for k, p in corpus_messages(shared).items()
        if any(t in p.read_bytes()[:200] for t in (b"ORU^R01", b"MDM^"))
    }
    assert found == set(EXPECTED)


def receipt_for(result) -> Receipt:
    if isinstance(result, Document):
        return Receipt(ReceiptStatus.ACCEPTED, "t", findings=result.warnings)
    return Receipt(
        ReceiptStatus.REJECTED, "t", findings=result.report.findings, rejection=result.kind
    )


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_corpus_message_outcome(shared, relative):
    code, errors, ids = EXPECTED[relative]
    raw = (shared / "corpus" / "hl7v2" / relative).read_bytes()
    result = intake.read(raw, "mllp:test", CdaLimits(), CdaValidator())
    receipt = receipt_for(result)
    msg, _ = parse(raw)
    answer, _ = parse(ack.build(msg, receipt, NOW, "A1", receipt.findings))
    assert answer.value("MSA-1") == code
    assert answer.value("MSA-2") == msg.control_id
    if isinstance(result, Rejected):
        got = [
            f"{f.rule}@{f.location}"
            for f in result.report.errors
            if f.layer == "hl7v2" or f.rule.startswith("ins.")
        ]
        assert got == errors
        errs = [e for e in answer.all("ERR") if answer.value("ERR-4", e) == "E"]
        assert len(errs) == len(result.report.errors)
        obx_errs = [e for e in errs if answer.value("ERR-2.1", e) == "OBX"]
        assert len(obx_errs) == sum("OBX[" in e for e in errors)
    else:
        assert [
            result.fields["document_id"],
            *(d.fields["document_id"] for d in result.related),
        ] == ids
        assert all(w.rule != "xml.well-formed" for w in result.warnings)


def test_unsupported_messages_of_the_corpus_get_ar(shared):
    """The ZAM^Z0x business acknowledgements are not documents: AR, unsupported type."""
    zam = [p for k, p in corpus_messages(shared).items() if b"ZAM^" in p.read_bytes()[:200]]
    assert len(zam) == 3
    for path in zam:
        result = intake.read(path.read_bytes(), "mllp:test", CdaLimits(), CdaValidator())
        assert isinstance(result, Rejected) and result.kind is RejectionKind.UNSUPPORTED


def test_flags_action_and_recipients_from_the_replacement_oru(shared):
    raw = (
        shared
        / "corpus/hl7v2"
        / f"{V20}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7"
    ).read_bytes()
    doc = intake.read(raw, "mllp:test", CdaLimits(), CdaValidator())
    assert isinstance(doc, Document)
    for fields in (doc.fields, doc.related[0].fields):
        assert fields["action"] == "replace"
        assert fields["flags"]["DESTDMP"] is True and fields["flags"]["MASQUE_PS"] is False
        assert fields["flags"]["DESTMSSANTEPAT"] is True
        assert fields["metadata"]["mss_recipients"] == (
            "adam.hoda@test-ci-sis.mssante.fr 2770763220829106@patient.mssante.fr"
        )
    assert doc.fields["replaces"] == "1.2.250.1.213.1.1.10"
    assert {w.rule for w in doc.warnings} >= {"hl7.segment-separator", "hl7.obx.base64-damaged"}


def test_deletion_oru_asks_for_deletion(shared):
    raw = (
        shared
        / "corpus/hl7v2"
        / f"{V20}/ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N1_Base64_N3_Base64.er7"
    ).read_bytes()
    doc = intake.read(raw, "mllp:test", CdaLimits(), CdaValidator())
    assert doc.fields["action"] == "delete" and doc.related[0].fields["action"] == "delete"


def _filed(store: RecordStore, document: Document) -> str:
    submission = Submission(raw=document.payload, transport="test", sender="lab")
    envelope = pipeline.normalise(document, document.payload, None, submission)
    return str(store.file(DocumentMessage(envelope, document.payload)))


def test_deletion_withdraws_the_version_it_carries_not_the_one_before(shared, tmp_path):
    """Initial (v1) → replacement (v2, OBX-11 C) → deletion (OBX-11 D). The deletion carries v2,
    whose relatedDocument RPLC names v1: its envelope must target v2 itself, or v1 (already
    superseded) is withdrawn and v2 stays in the record."""
    oru = shared / "corpus/hl7v2" / V20 / "ORU"
    store = RecordStore.open(f"sqlite:///{tmp_path / 'records.sqlite3'}")
    for path in sorted((oru / "Transmission initiale ORU").glob("CR_Bio_CDA_Niv*_v1.XML")):
        initial, _ = cda_intake.read(path.read_bytes(), CdaLimits(), CdaValidator())
        assert _filed(store, initial) == "stored"
    replacement = intake.read(
        (oru / "Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7").read_bytes(),
        "lab",
        CdaLimits(),
        CdaValidator(),
    )
    deletion = intake.read(
        (oru / "Suppression ORU/message_ORU_CR_Bio_DEL_N1_Base64_N3_Base64.er7").read_bytes(),
        "lab",
        CdaLimits(),
        CdaValidator(),
    )
    assert isinstance(replacement, Document) and isinstance(deletion, Document)
    assert replacement.fields["replaces"] == "1.2.250.1.213.1.1.10"
    assert [_filed(store, d) for d in (replacement, *replacement.related)] == ["stored"] * 2
    for document in (deletion, *deletion.related):
        assert document.fields["action"] == "delete" and document.fields["replaces"] is None
    assert [_filed(store, d) for d in (deletion, *deletion.related)] == ["withdrawn"] * 2
    ins = deletion.fields["patient"].ins
    assert store.query(ins, DocumentQuery()) == []  # nothing of the report stays current
    history = {
        r["document_id"]: r["status"] for r in store.query(ins, DocumentQuery(include_history=True))
    }
    assert history["1.2.250.1.213.1.1.12"] == history["1.2.250.1.213.1.1.11"] == "withdrawn"


MDM_INITIAL = f"{V20}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"


@pytest.mark.parametrize(
    ("trigger", "status"), [("T04", "F"), ("T10", "F"), ("T02", "D"), ("T02", "C"), ("T10", "D")]
)
def test_mdm_trigger_and_obx11_must_ask_for_the_same_action(shared, trigger, status):
    raw = (shared / "corpus/hl7v2" / MDM_INITIAL).read_bytes()
    lines = raw.replace(b"MDM^T02^MDM_T02", f"MDM^{trigger}^MDM_T02".encode()).split(b"\n")
    document_obx = [i for i, line in enumerate(lines) if line.startswith(b"OBX|1|ED|")]
    assert len(document_obx) == 1 and lines[document_obx[0]].rstrip().endswith(b"|F|")
    lines[document_obx[0]] = lines[document_obx[0]].rstrip()[:-2] + status.encode() + b"|"
    result = intake.read(b"\n".join(lines), "ris", CdaLimits(), CdaValidator())
    assert isinstance(result, Rejected) and result.kind is RejectionKind.INVALID
    found = [f for f in result.report.errors if f.rule == "hl7.obx.status-trigger"]
    assert [f.location for f in found] == ["OBX[1]-11"]
    assert f"MDM^{trigger}" in found[0].message and found[0].fix
    msg, _ = parse(b"\n".join(lines))
    receipt = receipt_for(result)
    answer, _ = parse(ack.build(msg, receipt, NOW, "A1", receipt.findings))
    assert answer.value("MSA-1") == "AE"
