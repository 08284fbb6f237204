"""No delivery limit drops what the gateway accepted, against the real RabbitMQ.

The local broker is 3.10 (no default limit; ``x-delivery-limit: -1`` drops at the first return
there). What RabbitMQ >= 4.0 does (a default limit of 20, -1 meaning none) cannot run here: the
4.x branch of topology.declare is run by telling it the version, and checked by what the broker
then holds (a redeclaration must match the arguments a queue was declared with)."""

from __future__ import annotations

import logging

import pika
import pika.exceptions
import pytest

from gateway.broker import names as h
from gateway.broker import topology
from gateway.broker.replay import Filter, replay
from tests.broker.helpers import declared, depth, work_routing

pytestmark = pytest.mark.broker

SCANS = 25  # more than RabbitMQ 4.0's default limit of 20


def park(ns, count: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(ns.url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for i in range(count):
            props = pika.BasicProperties(
                message_id=f"doc-{i}",
                correlation_id=f"trace-{i}",
                delivery_mode=pika.DeliveryMode.Persistent,
                headers={h.DESTINATION: "work"},
            )
            channel.basic_publish("", ns.names.queue("parking"), b"{}", props, mandatory=True)
    finally:
        conn.close()


def test_parked_messages_survive_many_replay_scans(broker_ns):
    declared(broker_ns, work_routing((100,)))
    park(broker_ns, 3)
    parking = broker_ns.names.queue("parking")
    for _ in range(SCANS):  # an operator looking for a message that is not there
        result = replay(broker_ns.url, broker_ns.names, parking, [Filter("trace_id", "none")])
        assert result.skipped == 3 and not result.replayed
    assert depth(broker_ns.url, parking) == 3


def declares_as(url: str, queue: str, arguments: dict) -> bool:
    """Whether ``queue`` exists with exactly these arguments (a redeclaration must match)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        conn.channel().queue_declare(queue, durable=True, arguments=arguments)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 406, exc
        return False
    finally:
        if conn.is_open:
            conn.close()


def declare(ns, table, version: tuple[int, ...]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(ns.url))
    try:
        topology.declare(conn.channel(), topology.plan(table, ns.names), broker_version=version)
    finally:
        conn.close()


def test_on_rabbitmq_4_destination_queues_have_no_delivery_limit(broker_ns):
    from gateway.routing import loader

    table = loader.parse(work_routing((100,)))
    broker_ns.track(table)
    declare(broker_ns, table, (4, 0))
    for name in ("parking", "work"):
        queue = broker_ns.names.queue(name)
        args = topology.queue_arguments(table.destinations[name], broker_ns.names)
        assert declares_as(broker_ns.url, queue, {**args, "x-delivery-limit": -1}), name
    retry = next(d for d in topology.plan(table, broker_ns.names) if ".retry-" in d.name)
    assert declares_as(broker_ns.url, retry.name, retry.arguments)  # never consumed: as before


def test_on_rabbitmq_3_the_queues_are_declared_as_before(broker_ns):
    table = declared(broker_ns, work_routing((100,)))  # the local broker: 3.x
    parking = broker_ns.names.queue("parking")
    args = topology.queue_arguments(table.destinations["parking"], broker_ns.names)
    assert declares_as(broker_ns.url, parking, args)


def test_a_queue_an_earlier_version_declared_is_kept_and_reported(broker_ns, caplog):
    caplog.set_level(logging.WARNING, logger="gateway")
    table = declared(broker_ns, work_routing((100,)))  # as earlier versions did: no argument
    declare(broker_ns, table, (4, 0))  # the gateway upgraded: still starts
    warned = [
        r.fields["queue"] for r in caplog.records if r.getMessage() == "topology.delivery-limit"
    ]
    assert sorted(warned) == sorted(broker_ns.names.queue(q) for q in ("parking", "work"))
    parking = broker_ns.names.queue("parking")
    args = topology.queue_arguments(table.destinations["parking"], broker_ns.names)
    assert declares_as(broker_ns.url, parking, args)
