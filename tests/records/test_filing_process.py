"""GATEWAY_FILING_PROCESS=1: the record consumers run in a child process. The gateway still
files every document once, answers /ready and /metrics for the child, and starts a new child
when one dies, losing nothing it had taken."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Settings
from gateway.errors import StoreUnavailable
from gateway.filing import FilingProcess
from gateway.routing import loader
from tests.broker.helpers import depth, post, wait_for
from tests.conftest import FIXTURES, ROOT

pytestmark = [pytest.mark.broker]

INS = "184127505612355"
TEMPLATE = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()


def _document(n: int) -> bytes:
    return TEMPLATE.replace(b"20261101.4711", f"20261101.{7000 + n}".encode())


def _id(n: int) -> str:
    return f"1.2.250.1.999.1.1.20261101.{7000 + n}"


def _metrics(gw) -> dict[tuple[str, tuple], float]:
    text = httpx.get(gw.http_url + "/metrics").text
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), "a metric family exposed twice"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _filed(metrics: dict) -> float:
    return sum(
        v
        for (name, labels), v in metrics.items()
        if name == "passerelle_consumer_messages_total" and ("outcome", "handled") in labels
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite3'}"
    return request.getfixturevalue("pg_url")


def test_documents_are_filed_by_the_child_and_the_gateway_reports_for_it(
    start_gateway, broker_ns, database_url
):
    gw = start_gateway(database_url=database_url, GATEWAY_FILING_PROCESS="1")
    filing = gw.services.filing
    assert gw.services.consumers == []  # none in the gateway's own process
    assert filing.pid() not in (None, os.getpid())
    wait_for(filing.ready, 10, "child consuming")
    ready = httpx.get(gw.http_url + "/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["filing"] is True

    assert [post(gw.http_url + "/documents", _document(n))[0] for n in (1, 2, 3)] == [202] * 3
    store = gw.services.store
    wait_for(lambda: len(store.documents_for_patient(INS)) == 3, 30, "filed")
    assert sorted(d["document_id"] for d in store.documents_for_patient(INS)) == [
        _id(n) for n in (1, 2, 3)
    ]
    # Counted by the child, served by the parent beside the parent's own counters.
    wait_for(lambda: _filed(_metrics(gw)) == 3, 10, "child's metrics")
    metrics = _metrics(gw)
    accepted = sum(
        v for (name, _), v in metrics.items() if name == "passerelle_messages_accepted_total"
    )
    assert accepted == 3
    # The child tracked the filing step: the trail shows it.
    trace = gw.services.tracking
    wait_for(
        lambda: {m["status"] for m in trace.search(limit=10)} == {"filed"}, 10, "filed tracked"
    )


def test_a_killed_child_is_replaced_and_what_was_accepted_meanwhile_is_filed_once(
    start_gateway, broker_ns, pg_url
):
    gw = start_gateway(database_url=pg_url, GATEWAY_FILING_PROCESS="1")
    filing = gw.services.filing
    wait_for(filing.ready, 10, "child consuming")
    first = filing.pid()
    assert post(gw.http_url + "/documents", _document(1))[0] == 202
    store = gw.services.store
    wait_for(lambda: len(store.documents_for_patient(INS)) == 1, 30, "filed")

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: filing.pid() is None or filing.pid() != first, 10, "child gone")
    # Accepted while no child runs: durable in the queue, filed by the next child.
    assert [post(gw.http_url + "/documents", _document(n))[0] for n in (2, 3)] == [202, 202]
    wait_for(lambda: filing.pid() not in (None, first), 30, "child replaced")
    wait_for(filing.ready, 10, "new child consuming")
    assert httpx.get(gw.http_url + "/ready").json()["checks"]["filing"] is True
    assert filing.restarts == 1
    wait_for(lambda: len(store.documents_for_patient(INS)) == 3, 30, "filed after restart")
    assert sorted(d["document_id"] for d in store.documents_for_patient(INS)) == [
        _id(n) for n in (1, 2, 3)
    ]
    names = broker_ns.names
    wait_for(lambda: depth(broker_ns.url, names.queue("patient-record")) == 0)
    assert depth(broker_ns.url, names.queue("parking")) == 0


def test_a_child_replaced_while_a_refused_routing_edit_is_on_disk_starts_with_the_gateways_rules(
    start_gateway, broker_ns, tmp_path
):
    """The gateway refuses a bad routing.yaml and keeps its rules; a child started then read
    the file itself, failed, and was never replaced: filing stopped until the file was fixed."""
    routing = tmp_path / "routing.yaml"
    routing.write_bytes((ROOT / "routing.yaml").read_bytes())
    gw = start_gateway(GATEWAY_FILING_PROCESS="1", GATEWAY_ROUTING_FILE=str(routing))
    filing = gw.services.filing
    wait_for(filing.ready, 10, "child consuming")
    routing.write_text("version: 1\nrules: [unterminated\n")  # refused by the gateway
    first = filing.pid()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: filing.pid() not in (None, first), 30, "child replaced")
    wait_for(filing.ready, 10, "new child consuming")
    assert filing.restarts == 1
    assert post(gw.http_url + "/documents", _document(1))[0] == 202
    store = gw.services.store
    wait_for(lambda: len(store.documents_for_patient(INS)) == 1, 30, "filed by the new child")


def test_a_terminated_child_stops_cleanly_and_is_replaced(start_gateway, broker_ns):
    """SIGTERM (a service manager stopping the group): the child finishes as when asked,
    tracking flushed, exit code 0; the gateway starts a new one."""
    gw = start_gateway(GATEWAY_FILING_PROCESS="1")
    filing = gw.services.filing
    wait_for(filing.ready, 10, "child consuming")
    assert post(gw.http_url + "/documents", _document(1))[0] == 202
    store = gw.services.store
    wait_for(lambda: len(store.documents_for_patient(INS)) == 1, 30, "filed")
    old = filing._process
    os.kill(old.pid, signal.SIGTERM)
    wait_for(lambda: filing.pid() not in (None, old.pid), 30, "child replaced")
    assert old.exitcode == 0
    trace = gw.services.tracking
    wait_for(lambda: [m["status"] for m in trace.search(limit=10)] == ["filed"], 10, "tracked")


def test_stopping_the_gateway_stops_the_child(start_gateway, broker_ns):
    gw = start_gateway(GATEWAY_FILING_PROCESS="1")
    pid = gw.services.filing.pid()
    gw.stop()
    wait_for(lambda: not _running(pid), 10, "child stopped")


def test_a_child_that_cannot_start_raises_its_reason_in_the_parent(broker_ns, keys_dir):
    settings = Settings.from_env(
        {
            "GATEWAY_AMQP_URL": broker_ns.url,
            "GATEWAY_AMQP_PREFIX": broker_ns.prefix,
            "GATEWAY_KEYS_DIR": str(keys_dir),
            "GATEWAY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        },
        root=ROOT,
    )
    with pytest.raises(StoreUnavailable):
        FilingProcess(settings, start_timeout_s=60).start()


def test_a_stop_while_a_replacement_starts_leaves_no_child(broker_ns, keys_dir, tmp_path):
    settings = Settings.from_env(
        {
            "GATEWAY_AMQP_URL": broker_ns.url,
            "GATEWAY_AMQP_PREFIX": broker_ns.prefix,
            "GATEWAY_KEYS_DIR": str(keys_dir),
            "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'records.sqlite3'}",
        },
        root=ROOT,
    )
    broker_ns.track(loader.load(settings.routing_file))
    filing = FilingProcess(settings, restart_delay_s=0.01)
    spawning = threading.Event()
    spawn = filing._spawn

    def spawn_noting_it() -> int:
        spawning.set()
        return spawn()

    filing._spawn = spawn_noting_it
    first = filing.start()
    spawning.clear()
    os.kill(first, signal.SIGKILL)
    # The replacement takes a second or more to import and connect: stop lands meanwhile.
    assert spawning.wait(10)
    filing.stop()
    wait_for(
        lambda: not [p for p in multiprocessing.active_children() if p.name == "passerelle-filing"],
        10,
        "no filing child left",
    )
    assert filing.pid() is None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not running
        return stat.read().split(")")[-1].split()[0] != "Z"
