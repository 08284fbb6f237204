"""A pipeline that does not finish is answered "unavailable" at its deadline, and what it
produces after that is never published: the sender's retry is the only acceptance. Real
gateway, real RabbitMQ; the documents stay in the queue (no record consumer) to be counted."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pika
import pytest

from gateway.service import IngestService
from tests.conftest import FIXTURES
from tests.waiting import wait_for

pytestmark = pytest.mark.broker

CDA = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()


def post(url: str) -> tuple[int, float]:
    started = time.monotonic()
    req = urllib.request.Request(url + "/documents", data=CDA, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, time.monotonic() - started


def queued(broker_ns) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
    try:
        queue = conn.channel().queue_declare(broker_ns.names.queue("patient-record"), passive=True)
        return queue.method.message_count
    finally:
        conn.close()


def test_a_stuck_pipeline_worker_is_answered_503_at_the_request_timeout_then_replaced(
    start_gateway, broker_ns
):
    gw = start_gateway(
        GATEWAY_PIPELINE_WORKERS="1", GATEWAY_REQUEST_TIMEOUT="2", GATEWAY_RECORD_CONSUMERS="0"
    )
    workers = gw.services.workers
    [pid] = workers.pids()
    os.kill(pid, signal.SIGSTOP)  # the pipeline stops answering (a loop on some input)
    try:
        status, elapsed = post(gw.http_url)
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed already, as it should be
            os.kill(pid, signal.SIGCONT)
    assert status == 503 and elapsed < 4, (status, elapsed)
    wait_for(lambda: workers.pids() and pid not in workers.pids(), 30, "a replacement")
    assert post(gw.http_url)[0] == 202
    time.sleep(0.5)
    assert queued(broker_ns) == 1, "only the retry was published"


class _Slow:
    """A pipeline step that takes ``seconds`` and finds nothing (sender-signature checks)."""

    policy = SimpleNamespace(must_sign=False)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.done = threading.Event()

    def check(self, raw, signature, sender) -> list:
        time.sleep(self.seconds)
        self.done.set()
        return []


def test_a_result_that_comes_after_the_deadline_is_dropped_not_published(start_gateway, broker_ns):
    gw = start_gateway(GATEWAY_RECORD_CONSUMERS="0")  # the pipeline in threads
    services, prompt = gw.services, gw.services.ingest
    slow = _Slow(1.5)
    services.ingest = IngestService(
        dataclasses.replace(prompt.tools, inbound=slow),
        services.publisher,
        services.names,
        services.executor,
        services.settings.publish_timeout_s,
        pipeline_timeout_s=0.5,
    )
    status, elapsed = post(gw.http_url)
    assert status == 503 and elapsed < 1.4, (status, elapsed)
    assert slow.done.wait(5), "the pipeline ran on, and finished"
    time.sleep(0.5)
    assert queued(broker_ns) == 0, "its late result was not published"
    services.ingest = prompt
    assert post(gw.http_url)[0] == 202
    wait_for(lambda: queued(broker_ns) == 1, 5, "the retry, published once")
