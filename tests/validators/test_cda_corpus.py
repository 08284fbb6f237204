"""The ANS example corpus under the built-in tier: patient documents accepted, except the
four whose INS carries a wrong NIR key, which are rejected by that rule alone."""

import pytest

from gateway.adapters.cda.parser import parse
from gateway.findings import Report
from gateway.validators.cda import CdaValidator
from tests.conftest import SHARED

CORPUS = SHARED / "corpus/cda"
# A catalogue of content models, not a patient document (see ../shared/corpus/README.md).
NOT_PATIENT_DOCUMENTS = {"01_Modèles_contenus_CDA.xml"}
# Published with an INS whose key is not 97 − NIR mod 97: the national pack does not check it.
WRONG_NIR_KEY = {
    "CSE-CS24_2025.01.xml",
    "CSE-CS8_2025.01.xml",
    "CSE-CS9_2025.01.xml",
    "OBP-SNE_2024.01.xml",
}


def corpus_files() -> list[str]:
    if not CORPUS.is_dir():
        return []
    return sorted(p.name for p in CORPUS.glob("*.xml") if p.name not in NOT_PATIENT_DOCUMENTS)


def judge(raw: bytes) -> Report:
    doc, findings = parse(raw)
    return Report.of(findings + (CdaValidator().validate(doc) if doc is not None else []))


@pytest.mark.shared
def test_the_corpus_has_its_patient_documents(shared):
    assert len(corpus_files()) == 46


@pytest.mark.shared
@pytest.mark.parametrize("name", corpus_files())
def test_corpus_document(shared, name):
    report = judge((CORPUS / name).read_bytes())
    if name in WRONG_NIR_KEY:
        assert [f.rule for f in report.errors] == ["ins.nir-key"]
        assert report.errors[0].location.startswith("/ClinicalDocument/recordTarget/patientRole/id")
    else:
        assert report.valid, [f.to_dict() for f in report.errors]
