"""Pipeline worker processes: same outcomes as in-process, on other cores, survive a crash."""

from __future__ import annotations

import asyncio
import contextlib
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
from gateway.workers import IN_FLIGHT, PipelineWorkers, WorkerDied, WorkersBusy
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


def test_a_stuck_worker_is_killed_at_the_job_timeout_its_callers_answered_and_it_is_replaced(
    settings,
):
    """A worker that stops answering (here: stopped by SIGSTOP) holds its jobs no longer than
    the job timeout: killed, they fail with WorkerDied, and so does a caller that waited for
    room; a replacement takes the next job."""
    pool = PipelineWorkers(settings, 1, job_timeout_s=1.0)
    oru = submission("hl7v2/oru_r01_lab_results.hl7")

    async def scenario():
        started = time.monotonic()
        calls = [pool.ingest(oru, ROUTING) for _ in range(IN_FLIGHT + 1)]  # one waits for room
        failed = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        return failed, time.monotonic() - started

    [pid] = pool.start()
    os.kill(pid, signal.SIGSTOP)
    try:
        failed, elapsed = asyncio.run(scenario())
        assert all(isinstance(f, WorkerDied | WorkersBusy) for f in failed), failed
        assert elapsed < 2.5, f"answered after {elapsed:.1f}s"
        deadline = time.monotonic() + 30
        while (pid in pool.pids() or not pool.pids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.pids() and pid not in pool.pids(), "replaced"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed (and reaped), not left stopped
        assert isinstance(run(pool, oru), Accepted)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        pool.shutdown()


def test_an_exception_that_does_not_round_trip_comes_back_as_a_plain_runtime_error(monkeypatch):
    """SignatureFault pickles but does not unpickle (its __init__ takes two arguments): the
    worker sends a RuntimeError naming it instead."""
    import pickle

    from gateway import workers as module
    from gateway.signing.rules import SignatureFault

    def broken(_submission):
        raise SignatureFault("signature.malformed", "boom")

    monkeypatch.setattr(module, "_ingest", broken)
    frame = module._answer(7, submission("cda/crbio_glycemia.xml"))
    size, job = module._ANSWER.unpack_from(frame)
    ok, value = pickle.loads(frame[module._ANSWER.size :])  # noqa: S301 (made here)
    assert (job, ok, size) == (7, False, len(frame) - module._ANSWER.size)
    assert type(value) is RuntimeError and "SignatureFault" in str(value)


class _Process:
    """A worker process as the parent sees it (the worker here is a thread)."""

    def is_alive(self) -> bool:
        return True

    def join(self, timeout=None) -> None: ...

    def kill(self) -> None: ...


def test_an_answer_the_parent_cannot_load_fails_its_job_only(settings):
    """The parent's end: an answer that does not unpickle (sent as is, as an older worker
    could) is dropped and fails its own job; the worker's next answers are read as ever."""
    import socket
    import threading

    from gateway import workers as module
    from gateway.signing.rules import SignatureFault

    parent, child = socket.socketpair()

    def worker() -> None:
        answered = 0
        while (body := module._read_frame(child)) is not None:
            job, _submission = module.pickle.loads(body)
            bad = answered == 0
            answered += 1
            value = SignatureFault("signature.malformed", "boom") if bad else f"outcome {job}"
            child.sendall(module._answer_frame(job, not bad, value))

    threading.Thread(target=worker, daemon=True).start()
    pool = PipelineWorkers(settings, 1)
    parent.setblocking(False)
    pool._workers = [module._Worker(_Process(), parent, 4242)]

    async def scenario():
        results = []
        for _ in range(4):
            try:
                call = pool.ingest(Submission(raw=b"x", transport="http"), ROUTING)
                results.append(await asyncio.wait_for(call, 5))
            except Exception as exc:
                results.append(exc)
        return results

    try:
        first, *rest = asyncio.run(scenario())
        assert isinstance(first, module.UnreadableAnswer), first
        assert [r.startswith("outcome") for r in rest] == [True] * 3, rest
        assert pool._workers[0].pending == {}
    finally:
        parent.close()
        child.close()
