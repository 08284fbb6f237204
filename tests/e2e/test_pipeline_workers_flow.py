"""With the pipeline in worker processes, documents are still signed, confirmed and filed."""

from __future__ import annotations

import json
import os
import time

import pytest

from gateway.adapters.hl7v2.parser import parse
from gateway.conformance.validator import PackValidator
from gateway.signing.keystore import CERT_FILE, KEY_FILE, load_pem
from tests.conftest import FIXTURES
from tests.e2e.test_document_flow import (
    CDA_INS,
    ORU_INS,
    get,
    mllp_exchange,
    patient_token,
    post,
    wait_for,
)
from tests.validators.cda_mutations import CRBIO, mutate, set_attr

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def test_documents_go_through_worker_processes_into_the_record(start_gateway, pg_url, keys_dir):
    gw = start_gateway(database_url=pg_url, GATEWAY_PIPELINE_WORKERS="2")
    workers = gw.services.workers
    pids = workers.pids()
    assert len(pids) == 2 and os.getpid() not in pids

    status, body = post(
        gw.http_url + "/documents", (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    )
    assert status == 202, body
    oru = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
    ack, _ = parse(mllp_exchange(gw.mllp, oru))
    assert ack.value("MSA-1") == "AA"
    rejected, report = post(gw.http_url + "/documents", b"<nope/>")
    assert rejected == 422 and report["findings"]

    cda_token, oru_token = patient_token(gw, CDA_INS), patient_token(gw, ORU_INS)
    url = gw.http_url + "/patients/{}/documents"
    cda_docs = wait_for(lambda: get(url.format(CDA_INS), cda_token)["documents"])
    assert wait_for(lambda: get(url.format(ORU_INS), oru_token)["documents"])
    row = gw.services.store.document(cda_docs[0]["id"])
    signature = json.loads(row["envelope"])["signature"]
    assert signature["key_id"] == load_pem(keys_dir / KEY_FILE, keys_dir / CERT_FILE).key_id
    assert "SignatureValue" in signature["signature"]


def test_the_pack_is_compiled_in_the_workers_not_in_the_intake_process(start_gateway, shared):
    """The intake process routes only; the worker applies the pack's rules."""
    gw = start_gateway(GATEWAY_PIPELINE_WORKERS="1", GATEWAY_CONFORMANCE_PACK=str(shared / "cisis"))
    layers = gw.services.tools.checks.cda_validator.layers
    assert not any(isinstance(layer, PackValidator) for layer in layers)
    # The ST checks of an address part, which only the pack has (dtr1-7-ST).
    raw = mutate(CRBIO, set_attr("//h:patientRole/h:addr/h:streetAddressLine", "compression", "B"))
    status, report = post(gw.http_url + "/documents", raw)
    assert status == 422, report
    found = {f["message"][:9] for f in report["findings"] if f["layer"].startswith("pack:")}
    assert "dtr1-7-ST" in found
    _, unchanged = post(gw.http_url + "/documents", CRBIO.read_bytes())
    assert "dtr1-7-ST" not in {f["message"][:9] for f in unchanged.get("findings", [])}


def test_stopping_the_gateway_stops_its_workers(start_gateway):
    gw = start_gateway(GATEWAY_PIPELINE_WORKERS="1")
    [pid] = gw.services.workers.pids()
    gw.stop()
    with pytest.raises(ProcessLookupError):  # gone (and reaped), not left behind
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
