"""Two gateway instances on one broker and one PostgreSQL record, publishing concurrently with
a record consumer on each: every document is filed exactly once, nothing is parked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.broker.helpers import depth, post, wait_for
from tests.conftest import FIXTURES

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

INS = "184127505612355"
COUNT = 40


def test_two_gateways_file_every_document_exactly_once(start_gateway, broker_ns, pg_url):
    gateways = [start_gateway(database_url=pg_url), start_gateway(database_url=pg_url)]
    assert all(c.consuming.wait(10) for gw in gateways for c in gw.services.consumers)
    template = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    # Each document its own id and setId (same setId + version with another id is a conflict).
    bodies = [
        template.replace(b"20261101.4711", f"20261101.{9000 + i}".encode()) for i in range(COUNT)
    ]
    ids = [f"1.2.250.1.999.1.1.20261101.{9000 + i}" for i in range(COUNT)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda n: post(gateways[n % 2].http_url + "/documents", bodies[n]), range(COUNT)
            )
        )
    assert [(status, receipt["status"]) for status, receipt in statuses] == [
        (202, "accepted")
    ] * COUNT

    store = gateways[0].services.store
    wait_for(lambda: len(store.documents_for_patient(INS)) >= COUNT, timeout=30)
    filed = [d["document_id"] for d in store.documents_for_patient(INS)]
    assert sorted(filed) == sorted(ids)  # each once: none lost, none twice
    names = broker_ns.names
    wait_for(lambda: depth(broker_ns.url, names.queue("patient-record")) == 0)
    assert depth(broker_ns.url, names.queue("parking")) == 0


def test_intake_only_gateway_leaves_filing_to_another_instance(start_gateway, broker_ns, pg_url):
    """GATEWAY_RECORD_CONSUMERS=0: the instance accepts and publishes but files nothing; the
    filing instance (no intake traffic) files what it accepted."""
    names = broker_ns.names
    intake = start_gateway(database_url=pg_url, GATEWAY_RECORD_CONSUMERS="0")
    assert intake.services.consumers == []
    template = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    bodies = [template.replace(b"20261101.4711", f"20261101.{8000 + i}".encode()) for i in (1, 2)]
    assert [post(intake.http_url + "/documents", b)[0] for b in bodies] == [202, 202]
    assert depth(broker_ns.url, names.queue("patient-record")) == 2  # durable, waiting
    assert intake.services.store.documents_for_patient(INS) == []

    filing = start_gateway(database_url=pg_url, GATEWAY_RECORD_CONSUMERS="3")
    assert len(filing.services.consumers) == 3
    wait_for(lambda: len(filing.services.store.documents_for_patient(INS)) == 2, timeout=30)
    wait_for(lambda: depth(broker_ns.url, names.queue("patient-record")) == 0)
    assert depth(broker_ns.url, names.queue("parking")) == 0
