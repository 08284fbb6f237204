"""No patient identifier, name or clinical value reaches the logs, whatever happens.

Runs accepted, rejected, hostile and forbidden submissions over HTTP and MLLP with every
logger captured at DEBUG, then looks for the fixtures' INS, names and result values in
everything logged (messages, arguments and structured fields).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import pytest

from gateway import logs
from gateway.security.senders import hash_key
from tests.conftest import FIXTURES
from tests.reliability.support import MllpSender, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

PATIENT_DATA = [
    "184127505612355",
    "292059912304525",  # INS
    "MARTIN",
    "Louis",
    "BERNARD",
    "Hélène",
    "19841205",
    "19920509",  # names, birth dates
    "IPP-000123",
    "IPP-998877",
    "12 rue des Tilleuls",  # local ids, address
    "5.4873",  # the glucose result, made distinctive below (a bare "5.4" matches durations)
    "mmol/L",
    "Glucose",  # clinical values
]


def post(url: str, body: bytes, headers: dict) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_flows_log_no_patient_data(pg_url, start_gateway, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # the most talkative setting an operator can choose
    logs.quiet_libraries()  # what `gateway serve` applies to libraries at every level
    senders = tmp_path / "senders.yaml"
    senders.write_text(
        f"senders:\n  - id: labo\n    api_key_sha256: {hash_key('k')}\n"
        "    document_types: ['11502-2']\n    facilities: ['*']\n"
        f"  - id: pharmacie\n    api_key_sha256: {hash_key('p')}\n"
        "    document_types: ['60591-5']\n    facilities: ['*']\n"
    )
    gw = start_gateway(database_url=pg_url, GATEWAY_SENDERS_FILE=str(senders))
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    cda = cda.replace(b"<td>5.4</td>", b"<td>5.4873</td>").replace(b'"5.4"', b'"5.4873"')
    oru = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes().replace(b"|5.4|", b"|5.4873|")
    assert cda.count(b"5.4873") == 2 and b"5.4873" in oru
    url = gw.http_url + "/documents"
    key = {"X-API-Key": "k"}

    assert post(url, cda, key) == 202
    assert post(url, cda.replace(b"184127505612355", b"184127505612350"), key) == 422  # bad INS
    assert post(gw.http_url + "/hl7v2", oru, {"X-API-Key": "p"}) == 403  # lab results: not granted
    assert post(url, cda, {}) == 401
    for hostile in ("injection_text.xml", "invalid_utf8.xml", "nul_bytes.hl7"):
        post(url, (FIXTURES / "hostile" / hostile).read_bytes(), key)
    assert MllpSender(gw.mllp, timeout=5).send(oru) is None  # MLLP needs mTLS here
    wait_for(lambda: gw.services.store.documents_for_patient("184127505612355"), 20, "filed")

    logged = "\n".join(
        f"{r.name} {r.getMessage()} {getattr(r, 'fields', '')} {r.args!r} {r.exc_text or ''}"
        for r in caplog.records
    )
    assert "ingest.done" in logged and "record.filed" in logged, "the flows did log"
    leaked = [value for value in PATIENT_DATA if value in logged]
    assert leaked == []


def test_a_pipeline_bug_is_logged_with_where_not_with_its_message(
    start_gateway, caplog, monkeypatch
):
    """503 to the sender; the log names the failing frames, never the exception's text (which
    may quote the document)."""
    import gateway.service

    def broken(submission, tools):
        raise ValueError("cannot read patient 184127505612355 MARTIN")

    monkeypatch.setattr(gateway.service, "ingest", broken)
    caplog.set_level(logging.DEBUG)
    gw = start_gateway()
    body = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    assert post(gw.http_url + "/documents", body, {}) == 503
    [failed] = [r for r in caplog.records if r.getMessage() == "ingest.failed"]
    assert failed.fields["error"] == "ValueError"
    assert any("broken" in frame for frame in failed.fields["where"]), failed.fields
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "184127505612355" not in logged and "MARTIN" not in logged
