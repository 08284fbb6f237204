"""Faults of the record store and of processes: nothing lost, nothing filed twice.

- the database refuses connections for a while: the consumer stops acking, the documents wait
  in their queue and are filed once it is back;
- the consumer process is SIGKILLed mid-batch: what it had not acked is redelivered and filed
  once;
- the gateway process is SIGKILLed mid-stream: every document a sender got AA for is filed,
  the sender resends what had no ACK, and the restarted gateway files each document once.
"""

from __future__ import annotations

import time
import urllib.parse

import pytest

from tests.conftest import ROOT, gateway_env
from tests.e2e.test_hl7v2_flow import queue_depth
from tests.reliability.support import (
    MllpSender,
    Process,
    database_outage,
    document_id,
    filed_ids,
    send_until_accepted,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

NO_CONSUMER_ROUTING = (
    "version: 1\n"
    "destinations:\n"
    "  patient-record: {queue: patient-record, type: quorum, dead_letter: parking}\n"
    "  parking: {queue: parking, type: quorum}\n"
    "rules:\n"
    "  - {name: all, match: {patient.ins: {exists: true}}, to: [patient-record]}\n"
    "default: {to: [parking]}\n"
    "parking: parking\n"
)


def send_all(address, control_ids: list[str]) -> None:
    sender = MllpSender(address)
    deadline = time.monotonic() + 60
    for cid in control_ids:
        send_until_accepted(sender, cid, deadline, lambda _code: None)
    sender.close()


def test_database_outage_holds_documents_in_the_queue_until_it_is_back(
    pg_admin_url, pg_url, start_gateway, broker_ns
):
    gw = start_gateway(database_url=pg_url)
    database = urllib.parse.urlsplit(pg_url).path.lstrip("/")
    send_all(gw.mllp, ["DB-BEFORE"])
    wait_for(lambda: filed_ids(pg_url), 20, "first document filed")

    control_ids = [f"DB-{i:03d}" for i in range(50)]
    with database_outage(pg_admin_url, database):
        send_all(gw.mllp, control_ids)  # the broker still takes them: AA
        time.sleep(1.5)  # the consumer meets the outage and backs off
        assert not gw.services.store.ping()
        assert queue_depth(broker_ns, "parking") == 0, "nothing is parked for an outage"
    wait_for(lambda: len(filed_ids(pg_url)) == 51, 40, "every document filed after the outage")
    ids = filed_ids(pg_url)
    assert set(ids) == {document_id(c) for c in ["DB-BEFORE", *control_ids]}
    assert queue_depth(broker_ns, "patient-record") == 0
    assert queue_depth(broker_ns, "parking") == 0


def test_consumer_killed_mid_batch_redelivers_and_files_once(
    pg_url, start_gateway, broker_ns, tmp_path
):
    routing = tmp_path / "routing.yaml"
    routing.write_text(NO_CONSUMER_ROUTING)
    gw = start_gateway(database_url=pg_url, GATEWAY_ROUTING_FILE=str(routing))
    control_ids = [f"CK-{i:04d}" for i in range(400)]
    send_all(gw.mllp, control_ids)
    assert queue_depth(broker_ns, "patient-record") == 400

    args = [
        "-m",
        "tests.reliability.record_consumer",
        broker_ns.url,
        broker_ns.names.queue("patient-record"),
        pg_url,
        "64",
    ]
    first = Process(args, {})
    try:
        wait_for(lambda: len(filed_ids(pg_url)) >= 40, 30, "the consumer is filing")
        first.kill()  # SIGKILL: no ack, no goodbye
    finally:
        first.kill()
    filed_before = len(filed_ids(pg_url))
    assert filed_before < 400, "killed mid-batch"

    second = Process(args, {})
    try:
        second.wait_event("consumer.started", 15)
        wait_for(lambda: len(filed_ids(pg_url)) == 400, 20, "every document filed")
        wait_for(lambda: queue_depth(broker_ns, "patient-record") == 0, 20, "queue drained")
    finally:
        second.stop()
    ids = filed_ids(pg_url)
    assert sorted(ids) == sorted({document_id(c) for c in control_ids})
    assert queue_depth(broker_ns, "parking") == 0


def test_gateway_killed_mid_stream_restarts_clean_and_files_each_document_once(
    pg_url, broker_ns, keys_dir
):
    from gateway.routing import loader

    broker_ns.track(loader.load(ROOT / "routing.yaml"))
    env = gateway_env(broker_ns, pg_url, keys_dir)
    control_ids = [f"GK-{i:04d}" for i in range(300)]
    acked: list[str] = []

    first = Process(["-m", "gateway", "serve"], env)
    try:
        started = first.wait_event("gateway.started")
        mllp = _mllp_address(started)
        sender = MllpSender(mllp, timeout=10)
        for cid in control_ids:
            code = sender.send(_oru(cid))
            if code == "AA":
                acked.append(cid)
            if len(acked) == 100:
                first.kill()  # mid-stream: the next sends find the gateway gone
            if code is None:
                break
        sender.close()
    finally:
        first.kill()
    assert 100 <= len(acked) < len(control_ids)

    second = Process(["-m", "gateway", "serve"], env)
    try:
        mllp = _mllp_address(second.wait_event("gateway.started"))
        # The sender resends everything it has no AA for, from where it stopped.
        send_all(mllp, [c for c in control_ids if c not in set(acked)])
        wait_for(lambda: len(filed_ids(pg_url)) == len(control_ids), 60, "every document filed")
    finally:
        second.stop()
    assert second.proc.returncode == 0, "clean stop after a restart"
    assert any(e.get("event") == "gateway.stopped" for e in second.events)
    ids = filed_ids(pg_url)
    assert len(ids) == len(set(ids))
    assert set(ids) == {document_id(c) for c in control_ids}


def _oru(cid: str) -> bytes:
    from tests.reliability.support import oru

    return oru(cid)


def _mllp_address(started: dict) -> tuple[str, int]:
    mllp = started["address"].split("mllp://")[1]
    host, port = mllp.rsplit(":", 1)
    return host, int(port)
