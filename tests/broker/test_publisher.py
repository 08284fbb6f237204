"""Publisher against the real RabbitMQ: confirmed, returned, and unreachable."""

import pika
import pytest

from gateway.broker import topology
from gateway.broker.publisher import OutboundMessage, Publisher
from gateway.errors import BrokerUnavailable, Unroutable
from gateway.routing import loader
from tests.conftest import ROOT

pytestmark = pytest.mark.broker


@pytest.fixture
def table(broker_ns):
    t = loader.load(ROOT / "routing.yaml")
    broker_ns.track(t)
    return t


@pytest.fixture
def publisher(broker_ns, table):
    p = Publisher(broker_ns.url, topology.plan(table, broker_ns.names))
    p.start()
    yield p
    p.stop()


def message(ns, key: str, i: int = 0) -> OutboundMessage:
    return OutboundMessage(ns.names.exchange, key, f"body-{i}".encode(), message_id=f"doc-{i}")


def test_confirmed_messages_are_in_the_queue(publisher, broker_ns):
    futures = [publisher.publish([message(broker_ns, "patient-record", i)]) for i in range(50)]
    for f in futures:
        assert f.result(timeout=10) is None
    conn = pika.BlockingConnection(pika.URLParameters(broker_ns.url))
    q = conn.channel().queue_declare(broker_ns.names.queue("patient-record"), passive=True)
    conn.close()
    assert q.method.message_count == 50


def test_a_message_no_queue_takes_is_unroutable_not_silently_dropped(publisher, broker_ns):
    future = publisher.publish([message(broker_ns, "nobody-listens")])
    with pytest.raises(Unroutable):
        future.result(timeout=10)


def test_one_unroutable_message_fails_its_whole_batch(publisher, broker_ns):
    future = publisher.publish([message(broker_ns, "patient-record"), message(broker_ns, "void")])
    with pytest.raises(Unroutable):
        future.result(timeout=10)


def test_unreachable_broker_fails_start_clearly():
    p = Publisher("amqp://guest:guest@127.0.0.1:1/")
    with pytest.raises(BrokerUnavailable, match="cannot reach RabbitMQ"):
        p.start(timeout=10)


def test_publish_before_connecting_fails_fast():
    p = Publisher("amqp://guest:guest@127.0.0.1:1/")
    with pytest.raises(BrokerUnavailable):
        p.publish([OutboundMessage("x", "y", b"", "id")]).result(timeout=1)


def test_a_clean_stop_is_not_a_warning(broker_ns, table, caplog):
    """Operators alert on warnings: stopping the gateway must not look like losing RabbitMQ."""
    import logging

    caplog.set_level(logging.INFO, logger="gateway")
    p = Publisher(broker_ns.url, topology.plan(table, broker_ns.names))
    p.start()
    p.publish([message(broker_ns, "patient-record")]).result(10)
    p.stop()
    events = {r.getMessage(): r.levelno for r in caplog.records}
    assert events.get("broker.closed") == logging.INFO
    assert "broker.disconnected" not in events
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
