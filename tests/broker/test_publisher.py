"""Publishers against the real RabbitMQ: confirmed, returned, unreachable, reconnected.

Both runners: ``Publisher`` (a thread of its own owns the connection) and ``LoopPublisher``
(an event loop owns it, as in the gateway), called here from the test's thread; what only
the loop's own callers see is at the end."""

import asyncio
import concurrent.futures
import logging
import os
import threading
import time

import pika
import pytest

from gateway.broker import topology
from gateway.broker.loop_publisher import LoopPublisher
from gateway.broker.publisher import Coalescing, OutboundMessage, Publisher
from gateway.errors import BrokerUnavailable, Unroutable
from gateway.routing import loader
from tests.conftest import ROOT
from tests.reliability.support import amqp_connections, close_connections

pytestmark = pytest.mark.broker
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
def table(broker_ns):
    t = loader.load(ROOT / "routing.yaml")
    broker_ns.track(t)
    return t


@pytest.fixture
def loop():
    """An event loop running in a thread of its own, as the gateway's runs its transports."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture(params=["thread", "loop"])
def make(request):
    """A publisher of the runner under test (not started)."""

    def make_(url: str, *args, **kwargs):
        if request.param == "thread":
            return Publisher(url, *args, **kwargs)
        return LoopPublisher(request.getfixturevalue("loop"), url, *args, **kwargs)

    return make_


@pytest.fixture
def publisher(make, broker_ns, table):
    p = make(broker_ns.url, topology.plan(table, broker_ns.names))
    p.start()
    yield p
    p.stop()


def message(ns, key: str, i: int = 0) -> OutboundMessage:
    return OutboundMessage(ns.names.exchange, key, f"body-{i}".encode(), message_id=f"doc-{i}")


def queued(ns, destination: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(ns.url))
    try:
        q = conn.channel().queue_declare(ns.names.queue(destination), passive=True)
        return q.method.message_count
    finally:
        conn.close()


def test_confirmed_messages_are_in_the_queue(publisher, broker_ns):
    futures = [publisher.publish([message(broker_ns, "patient-record", i)]) for i in range(50)]
    for f in futures:
        assert f.result(timeout=10) is None
    assert queued(broker_ns, "patient-record") == 50


def test_a_message_no_queue_takes_is_unroutable_not_silently_dropped(publisher, broker_ns):
    future = publisher.publish([message(broker_ns, "nobody-listens")])
    with pytest.raises(Unroutable):
        future.result(timeout=10)


def test_one_unroutable_message_fails_its_whole_batch(publisher, broker_ns):
    future = publisher.publish([message(broker_ns, "patient-record"), message(broker_ns, "void")])
    with pytest.raises(Unroutable):
        future.result(timeout=10)


def test_unreachable_broker_fails_start_clearly(make):
    p = make(UNREACHABLE)
    with pytest.raises(BrokerUnavailable, match="cannot reach RabbitMQ"):
        p.start(timeout=10)


def test_publish_before_connecting_fails_fast(make):
    p = make(UNREACHABLE)
    with pytest.raises(BrokerUnavailable):
        p.publish([OutboundMessage("x", "y", b"", "id")]).result(timeout=1)


def test_a_clean_stop_is_not_a_warning(make, broker_ns, table, caplog):
    """Operators alert on warnings: stopping the gateway must not look like losing RabbitMQ."""
    caplog.set_level(logging.INFO, logger="gateway")
    p = make(broker_ns.url, topology.plan(table, broker_ns.names))
    p.start()
    p.publish([message(broker_ns, "patient-record")]).result(10)
    p.stop()
    events = {r.getMessage(): r.levelno for r in caplog.records}
    assert events.get("broker.closed") == logging.INFO
    assert "broker.disconnected" not in events
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_connection_the_broker_closes_comes_back_by_itself(make, broker_ns, table):
    before = set(amqp_connections(os.getpid()))
    publisher = make(broker_ns.url, topology.plan(table, broker_ns.names))
    publisher.start()
    try:
        _comes_back(publisher, broker_ns, set(amqp_connections(os.getpid())) - before)
    finally:
        publisher.stop()


def _comes_back(publisher, broker_ns, mine: set[str]) -> None:
    assert len(mine) == 1, "the publisher's connection (the topology's is closed)"
    close_connections(sorted(mine))
    deadline = time.monotonic() + 30
    while publisher.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not publisher.ready, "the publisher noticed its connection was closed"
    while not publisher.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publisher.ready, "the publisher reconnected"
    publisher.publish([message(broker_ns, "patient-record")]).result(10)
    assert queued(broker_ns, "patient-record") == 1


# -- LoopPublisher, called on its loop (the gateway's service) -------------------------------


def on(loop, coroutine):
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(20)


@pytest.fixture
def in_loop(loop, broker_ns, table):
    p = LoopPublisher(loop, broker_ns.url, topology.plan(table, broker_ns.names))
    p.start()
    yield p
    p.stop()


def test_on_its_loop_publishes_are_written_at_once_and_confirmed_in_the_loop(
    in_loop, loop, broker_ns
):
    async def fifty():
        futures = [in_loop.publish([message(broker_ns, "patient-record", i)]) for i in range(50)]
        assert all(isinstance(f, asyncio.Future) for f in futures)
        await asyncio.gather(*futures)

    on(loop, fifty())
    assert queued(broker_ns, "patient-record") == 50


def test_from_another_thread_the_work_is_handed_to_the_loop(in_loop, broker_ns):
    future = in_loop.publish([message(broker_ns, "patient-record")])
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(10) is None


def test_on_its_loop_an_unroutable_batch_fails(in_loop, loop, broker_ns):
    async def publish():
        await in_loop.publish([message(broker_ns, "patient-record"), message(broker_ns, "void")])

    with pytest.raises(Unroutable):
        on(loop, publish())


def test_a_publish_after_stop_is_refused_not_left_waiting(in_loop, loop, broker_ns):
    in_loop.stop()

    async def publish():
        await asyncio.wait_for(in_loop.publish([message(broker_ns, "patient-record")]), 5)

    with pytest.raises(BrokerUnavailable):
        on(loop, publish())


# -- frames of one loop turn, one write ------------------------------------------------------


class _Recorded:
    """Stands in for pika's BaseConnection below the mixin: records what reaches the transport."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self._transport = object()
        self.due: list = []
        self.ioloop = self

    def call_later(self, _delay, callback) -> None:
        self.due.append(callback)

    def _adapter_emit_data(self, data: bytes) -> None:
        self.written.append(data)


class _Coalesced(Coalescing, _Recorded):
    pass


def test_frames_emitted_in_one_loop_turn_reach_the_socket_as_one_write_in_order():
    conn = _Coalesced()
    for frame in (b"method-1", b"header-1", b"body-1", b"method-2", b"header-2", b"body-2"):
        conn._adapter_emit_data(frame)
    assert conn.written == [] and len(conn.due) == 1, "held until the turn ends, one flush"
    conn.due.pop()()
    assert conn.written == [b"method-1header-1body-1method-2header-2body-2"]
    conn._adapter_emit_data(b"next")
    conn.due.pop()()
    assert conn.written[-1] == b"next"


def test_frames_left_when_the_connection_is_lost_are_dropped_not_raised():
    conn = _Coalesced()
    conn._adapter_emit_data(b"frame")
    conn._transport = None
    conn.due.pop()()
    assert conn.written == []
