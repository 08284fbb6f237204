"""Declare exchanges, queues and bindings from the routing table, idempotently.

Per destination D (routing key D on both exchanges):

    <prefix>.documents    --D-->  <prefix>.D   <--D--  <prefix>.dead-letter
    <prefix>.D.retry-<n>ms  (TTL n ms, dead-letters to <prefix>.dead-letter with key D)

A consumer that fails a message puts it in the retry queue of its attempt (through the default
exchange); the TTL brings it back. When the attempts are spent, or the message is poison, it
goes to the destination's ``dead_letter`` target through the dead-letter exchange.

No delivery limit. The gateway retries and parks by itself; a broker's delivery limit would
instead drop a message (or dead-letter it at most once) after it was returned to its queue
often enough — by a store outage's requeues, a consumer's restarts, or operators' replay scans
of the parking queue. RabbitMQ 4.0 gives every quorum queue a limit of 20 by default, so each
destination's quorum queue is declared there with ``x-delivery-limit: -1`` (none). Not on 3.x:
it has no default limit, and takes -1 literally (3.10.8 drops the message at its first return).
A queue an earlier version declared without the argument cannot be redeclared with it
(PRECONDITION_FAILED, "inequivalent arg"): it is then declared as it was, and the log says so
(``topology.delivery-limit``): the operator sets the policy docs/routing.md gives, or
recreates the queue once drained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from gateway.broker.connection import open_blocking
from gateway.broker.names import Names
from gateway.errors import BrokerUnavailable
from gateway.logs import log
from gateway.routing.table import Destination, RoutingTable

NO_DELIVERY_LIMIT = {"x-delivery-limit": -1}  # RabbitMQ >= 4.0 only (see the module docstring)
FIRST_DEFAULT_LIMIT = (4, 0)  # the first version that gives quorum queues a delivery limit


@dataclass(frozen=True)
class Declaration:
    kind: str  # "exchange", "queue", "binding"
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    target: str | None = None  # bindings: queue bound
    routing_key: str | None = None
    durable: bool = True
    unlimited_deliveries: bool = False  # quorum queues: x-delivery-limit -1 on RabbitMQ >= 4.0

    def __str__(self) -> str:
        if self.kind == "binding":
            return f"binding {self.name} → {self.target} [{self.routing_key}]"
        args = ", ".join(f"{k}={v}" for k, v in self.arguments.items())
        transient = "" if self.durable else " transient"
        unlimited = " no delivery limit" if self.unlimited_deliveries else ""
        return f"{self.kind} {self.name}{transient}{unlimited}" + (f" ({args})" if args else "")


def plan(table: RoutingTable, names: Names) -> list[Declaration]:
    """What must exist on the broker for ``table`` (printed by `gateway topology --dry-run`)."""
    decls = [
        Declaration("exchange", names.exchange, {"type": "topic"}),
        Declaration("exchange", names.dead_letter_exchange, {"type": "topic"}),
    ]
    for dest in table.destinations.values():
        queue = names.queue(dest.queue)
        decls.append(
            Declaration(
                "queue",
                queue,
                queue_arguments(dest, names),
                durable=_durable(dest),
                unlimited_deliveries=dest.queue_type == "quorum",
            )
        )
        decls.append(Declaration("binding", names.exchange, {}, queue, dest.name))
        decls.append(Declaration("binding", names.dead_letter_exchange, {}, queue, dest.name))
        for delay in dest.retry_delays_ms:
            retry_args = {
                "x-queue-type": dest.queue_type,
                "x-message-ttl": delay,
                "x-dead-letter-exchange": names.dead_letter_exchange,
                "x-dead-letter-routing-key": dest.name,
            }
            decls.append(
                Declaration(
                    "queue",
                    names.retry_queue(dest.queue, delay),
                    retry_args,
                    durable=_durable(dest),
                )
            )
    return decls


def queue_arguments(dest: Destination, names: Names) -> dict[str, Any]:
    args: dict[str, Any] = {"x-queue-type": dest.queue_type}
    if dest.max_length:
        args["x-max-length"] = dest.max_length
        args["x-overflow"] = "reject-publish"  # the publisher is told (nack), nothing dropped
    if dest.message_ttl_ms:
        args["x-message-ttl"] = dest.message_ttl_ms
    if dest.dead_letter:
        args["x-dead-letter-exchange"] = names.dead_letter_exchange
        args["x-dead-letter-routing-key"] = dest.dead_letter
    if dest.single_active_consumer:
        args["x-single-active-consumer"] = True
    return args


def _durable(dest: Destination) -> bool:
    return dest.durable or dest.queue_type == "quorum"  # quorum queues are always durable


def declare(
    channel: pika.adapters.blocking_connection.BlockingChannel,
    decls: list[Declaration],
    broker_version: tuple[int, ...] | None = None,
):
    """Declare ``decls`` on ``channel``'s broker (``broker_version``: as it announces itself
    unless given). Returns the channel it ended on: a refused redeclaration closes one."""
    version = broker_version if broker_version is not None else _version(channel)
    unlimited = version is not None and version >= FIRST_DEFAULT_LIMIT
    for d in decls:
        if d.kind == "exchange":
            channel.exchange_declare(d.name, exchange_type=d.arguments["type"], durable=d.durable)
        elif d.kind == "queue" and unlimited and d.unlimited_deliveries:
            channel = _declare_unlimited(channel, d)
        elif d.kind == "queue":
            channel.queue_declare(d.name, durable=d.durable, arguments=d.arguments)
        else:
            channel.queue_bind(d.target, d.name, routing_key=d.routing_key)
    return channel


def _declare_unlimited(channel, d: Declaration):
    """``d`` with no delivery limit; as an earlier version declared it when it exists so."""
    try:
        channel.queue_declare(
            d.name, durable=d.durable, arguments={**d.arguments, **NO_DELIVERY_LIMIT}
        )
        return channel
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 406 or "x-delivery-limit" not in exc.reply_text:
            raise
    channel = channel.connection.channel()
    channel.queue_declare(d.name, durable=d.durable, arguments=d.arguments)
    log(
        "topology.delivery-limit",
        level=30,
        queue=d.name,
        detail="declared earlier with the broker's default delivery limit (20 from RabbitMQ "
        "4.0): a message returned that often is dropped; set the policy in docs/routing.md",
    )
    return channel


def _version(channel) -> tuple[int, ...] | None:
    """The broker's version from its connection.start properties; None when not told."""
    impl = getattr(getattr(channel, "connection", None), "_impl", None)
    version = (getattr(impl, "server_properties", None) or {}).get("version")
    if isinstance(version, bytes):
        version = version.decode("ascii", "replace")
    numbers = re.match(r"(\d+)\.(\d+)", version) if isinstance(version, str) else None
    return tuple(int(n) for n in numbers.groups()) if numbers else None


def declare_at(url: str, decls: list[Declaration]) -> None:
    """Declare on a short-lived connection; BrokerUnavailable when the broker refuses."""
    conn = open_blocking(url)
    try:
        declare(conn.channel(), decls)
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"cannot declare topology: {exc!r}") from None
    finally:
        if conn.is_open:
            conn.close()


def delete(
    channel: pika.adapters.blocking_connection.BlockingChannel, decls: list[Declaration]
) -> None:
    """Remove what ``plan`` declared (tests clean up after themselves with this)."""
    for d in decls:
        if d.kind == "queue":
            channel.queue_delete(d.name)
    for d in decls:
        if d.kind == "exchange":
            channel.exchange_delete(d.name)
