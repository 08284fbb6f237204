"""Pipeline worker processes: same outcomes as in-process, on other cores, survive a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from gateway import bootstrap
from gateway.config import Settings
from gateway.outcome import Accepted, Rejected
from gateway.pipeline import ingest
from gateway.routing import loader
from gateway.submission import Submission
from gateway.workers import PipelineWorkers, WorkerDied
from tests.conftest import FIXTURES, ROOT

ROUTING = loader.load(ROOT / "routing.yaml")


@pytest.fixture(scope="module")
def settings(keys_dir) -> Settings:
    return Settings.from_env(
        {"GATEWAY_KEYS_DIR": str(keys_dir), "GATEWAY_PIPELINE_WORKERS": "2"}, root=ROOT
    )


@pytest.fixture(scope="module")
def workers(settings):
    pool = PipelineWorkers(settings, settings.pipeline_workers)
    pool.start()
    yield pool
    pool.shutdown()


def submission(relative: str) -> Submission:
    return Submission(raw=(FIXTURES / relative).read_bytes(), transport="http", sender="lab-1")


def run(workers: PipelineWorkers, *submissions: Submission):
    """The outcomes of ``submissions``, sent at once from one event loop."""

    async def all_of():
        calls = (workers.ingest(s, ROUTING) for s in submissions)
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)

    outcomes = asyncio.run(all_of())
    return outcomes[0] if len(outcomes) == 1 else outcomes


def test_workers_are_other_processes_each_with_its_own_tools(workers):
    pids = workers.pids()
    assert len(pids) == 2 and os.getpid() not in pids


def test_outcome_from_a_worker_equals_the_in_process_outcome(workers, settings):
    sub = submission("cda/crbio_glycemia.xml")
    remote = run(workers, sub)
    local = ingest(sub, bootstrap.load_tools(settings))
    assert isinstance(remote, Accepted) and isinstance(local, Accepted)
    assert remote.envelope.signature is not None  # signed in the worker, with the same key
    assert remote.envelope.signature.key_id == local.envelope.signature.key_id
    assert remote.payload == local.payload
    assert remote.destinations == local.destinations
    assert "patient-record" in remote.destinations
    assert remote.envelope.document_id == local.envelope.document_id
    assert remote.envelope.trace_id == sub.trace_id


def test_rejections_come_back_with_their_findings(workers):
    outcome = run(workers, Submission(raw=b"not a document", transport="http"))
    assert isinstance(outcome, Rejected)
    assert [f.rule for f in outcome.report.findings] == ["input.format"]


def test_a_killed_worker_fails_its_work_and_is_replaced(settings):
    pool = PipelineWorkers(settings, 1)
    try:
        [pid] = pool.start()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid in pool.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        outcomes = []
        for _ in range(3):  # the dead worker is noticed when its socket is written or read
            outcome = run(pool, submission("hl7v2/oru_r01_lab_results.hl7"))
            outcomes.append(outcome)
            if not isinstance(outcome, WorkerDied):
                break
        assert isinstance(outcomes[-1], Accepted), outcomes
        assert len(outcomes) <= 2  # at most the one submission that met the dead worker failed
        assert pool.pids() and pid not in pool.pids()
    finally:
        pool.shutdown()


def test_a_worker_killed_while_the_loop_runs_is_replaced_in_that_loop(settings):
    """The gateway's case: one event loop all along, a worker dies between two messages."""
    pool = PipelineWorkers(settings, 1)

    async def scenario():
        oru = submission("hl7v2/oru_r01_lab_results.hl7")
        first = await pool.ingest(oru, ROUTING)
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(await asyncio.wait_for(pool.ingest(oru, ROUTING), 60))
                break
            except WorkerDied as exc:
                outcomes.append(exc)
        return first, pid, outcomes

    try:
        pool.start()
        first, pid, outcomes = asyncio.run(scenario())
        assert isinstance(first, Accepted)
        assert isinstance(outcomes[-1], Accepted) and len(outcomes) <= 2, outcomes
        assert pool.pids() and pid not in pool.pids()
    finally:
        pool.shutdown()


def test_work_in_flight_is_spread_and_each_answer_goes_to_its_own_caller(workers):
    subs = [submission("cda/crbio_glycemia.xml") for _ in range(6)]
    subs += [Submission(raw=b"not a document %d" % i, transport="http") for i in range(6)]
    outcomes = run(workers, *subs)
    assert [type(o) for o in outcomes] == [Accepted] * 6 + [Rejected] * 6
    assert [o.envelope.trace_id for o in outcomes[:6]] == [s.trace_id for s in subs[:6]]


def test_a_worker_is_sent_at_most_in_flight_jobs_the_rest_wait_for_room(settings):
    """Jobs wait in the parent, not in a worker's socket: a worker busy with a long one does
    not hold up the next, which goes to whichever worker frees first."""
    from gateway import workers as module

    pool = PipelineWorkers(settings, 1)
    most = []
    send = pool._send

    async def counting(worker, frame):
        most.append(len(worker.pending))
        await send(worker, frame)

    pool._send = counting
    try:
        pool.start()
        outcomes = run(pool, *[submission("hl7v2/oru_r01_lab_results.hl7") for _ in range(8)])
        assert all(isinstance(o, Accepted) for o in outcomes), outcomes
        assert len(most) == 8 and max(most) == module.IN_FLIGHT
    finally:
        pool.shutdown()


def test_a_pipeline_bug_comes_back_as_the_callers_exception(workers):
    """An exception inside ingest() reaches its caller (the service answers "retry") and the
    worker goes on with the next submission."""
    broken = Submission(raw=None, transport="http")  # type: ignore[arg-type]  # not bytes
    failed, fine = run(workers, broken, submission("cda/crbio_glycemia.xml"))
    assert isinstance(failed, TypeError)
    assert isinstance(fine, Accepted)
    assert isinstance(run(workers, submission("hl7v2/oru_r01_lab_results.hl7")), Accepted)


def test_routing_is_decided_again_with_the_parents_live_table(workers, tmp_path):
    """routing.yaml reloads happen in the parent; the workers' table must not win."""
    from gateway.routing import loader
    from gateway.workers import routed

    outcome = run(workers, submission("cda/crbio_glycemia.xml"))
    assert "patient-record" in outcome.destinations
    text = (ROOT / "routing.yaml").read_text()
    rules_at = text.index("\nrules:")
    reloaded = tmp_path / "routing.yaml"
    reloaded.write_text(text[:rules_at] + "\nrules: []\n" + text[text.index("\ndefault:") :])
    again = routed(outcome, loader.load(reloaded))
    assert again.destinations == ("parking",)
    assert again.envelope == outcome.envelope and again.payload == outcome.payload


def test_a_document_accepted_as_sent_goes_back_without_its_bytes(settings, monkeypatch):
    """The parent holds the submitted bytes: a worker's reply leaves them out when the payload
    is exactly those bytes (a CDA posted as is), and the parent puts them back."""
    from gateway import workers as module

    monkeypatch.setattr(module, "_tools", bootstrap.load_tools(settings))
    cda = submission("cda/crbio_glycemia.xml")
    reply = module._ingest(cda)
    assert isinstance(reply, module._Echoed) and reply.outcome.payload == b""
    restored = module._restored(reply, cda)
    assert restored.payload == cda.raw
    assert restored.envelope == reply.outcome.envelope

    oru = submission("hl7v2/oru_r01_lab_results.hl7")  # converted: its payload is new bytes
    converted = module._ingest(oru)
    assert isinstance(converted, Accepted) and converted.payload.startswith(b"<?xml")
    assert module._restored(converted, oru) is converted
