"""Small helpers for broker tests: read queues with bounded waits."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pika

from tests.waiting import wait_for  # noqa: F401 (re-exported)


def work_routing(retry_delays_ms: tuple[int, ...]) -> str:
    """A routing.yaml of one ``work`` queue retried after each delay, then parked."""
    delays = ", ".join(str(d) for d in retry_delays_ms)
    return (
        "version: 1\n"
        "destinations:\n"
        "  work:\n"
        "    type: quorum\n"
        f"    retry: {{delays_ms: [{delays}]}}\n"
        "    dead_letter: parking\n"
        "  parking: {type: quorum}\n"
        "default: {to: [work]}\n"
        "parking: parking\n"
    )


def declared(ns, routing: str):
    """``routing`` parsed, its topology declared under ``ns`` (deleted with ``ns``)."""
    from gateway.broker import topology
    from gateway.routing import loader

    table = loader.parse(routing)
    ns.track(table)
    topology.declare_at(ns.url, topology.plan(table, ns.names))
    return table


def get_one(url: str, queue: str, timeout: float = 10.0):
    """(properties, body) of the next message of ``queue`` (acked), waiting up to ``timeout``."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return props, body
            conn.sleep(0.05)
    finally:
        conn.close()
    raise AssertionError(f"no message in {queue} within {timeout}s")


def depth(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def publish(url: str, exchange: str, key: str, body: bytes, message_id: str = "doc-1") -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        props = pika.BasicProperties(
            message_id=message_id,
            correlation_id="trace-1",
            delivery_mode=pika.DeliveryMode.Persistent,
        )
        channel.basic_publish(exchange, key, body, props, mandatory=True)
    finally:
        conn.close()


def post(url: str, body: bytes) -> tuple[int, dict]:
    """POST to the gateway: (HTTP status, receipt)."""
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
