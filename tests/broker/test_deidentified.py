"""passerelle.deidentified/1 keeps only allow-listed envelope fields: nothing that names or
reaches the patient (INS, MSSanté addresses), no free text a sender wrote."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gateway.broker.message import DEIDENTIFIED_FORMAT, encode_deidentified
from gateway.envelope import Code, Party, SignatureInfo
from gateway.outcome import Rejected
from gateway.pipeline import Checks, normalise, read
from gateway.submission import Submission
from tests.records.builders import INS, message

# An ORU^R01 whose PRT segments name MSSanté recipients, the patient's own mailbox among them.
WITH_RECIPIENTS = (
    "hl7v2/TRANS_DOC_CDA_HL7V2_V2.0/ORU/Remplacement ORU/"
    "message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7"
)


def test_only_allow_listed_fields_are_kept():
    base = message().envelope
    env = dataclasses.replace(
        base,
        title=f"Compte rendu de DUPONT Jean {INS}",
        type_code=Code("11502-2", "2.16.840.1.113883.6.1", display=f"CR de DUPONT {INS}"),
        custodian=Party(id="1750000001", id_system="1.2.250.1.71.4.2.2", name="DUPONT Jean"),
        metadata={
            "hl7_message_type": "ORU^R01",
            "mss_recipients": f"dr@hop.mssante.fr {INS}6@patient.mssante.fr",
            "mss_reply_to": "dr@hop.mssante.fr",
            "something_new": INS,
        },
        signature=SignatureInfo("k1", "ES256", "2026-11-01T09:30:00Z", "detached", "<sig/>"),
    )
    body = encode_deidentified(env)
    data = json.loads(body)
    assert data["format"] == DEIDENTIFIED_FORMAT
    kept = data["envelope"]
    assert "patient" not in kept and "title" not in kept and "warnings" not in kept
    assert kept["metadata"] == {"hl7_message_type": "ORU^R01"}
    assert kept["type_code"] == {"code": "11502-2", "system": "2.16.840.1.113883.6.1"}
    assert kept["custodian"] == {"id": "1750000001", "id_system": "1.2.250.1.71.4.2.2"}
    assert kept["signature"] == {
        "key_id": "k1",
        "algorithm": "ES256",
        "signed_at": "2026-11-01T09:30:00Z",
        "form": "detached",
    }
    assert kept["document_id"] == env.document_id and kept["sha256"] == env.sha256
    assert INS not in body.decode() and b"DUPONT" not in body and b"@" not in body


@pytest.mark.shared
def test_a_corpus_message_with_mssante_recipients_loses_every_trace_of_the_ins(shared):
    raw = (shared / "corpus" / WITH_RECIPIENTS).read_bytes()
    submission = Submission(raw=raw, transport="test", sender="mllp:127.0.0.1")
    document = read(submission, Checks())
    assert not isinstance(document, Rejected), document
    env = normalise(document, document.payload, None, submission)
    ins = env.patient.ins
    assert ins and ins in env.metadata["mss_recipients"]  # the patient's own mailbox
    body = encode_deidentified(env)
    assert ins not in body.decode() and ins[:13] not in body.decode()  # with or without its key
    assert b"mss" not in body and b"@" not in body
    for name in (env.patient.family_name, env.patient.given_names):
        assert not name or name.encode() not in body
