"""Declare exchanges, queues and bindings from the routing table, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pika

from gateway.broker.names import Names
from gateway.routing.table import RoutingTable


@dataclass(frozen=True)
class Declaration:
    kind: str  # "exchange", "queue", "binding"
    name: str
    arguments: dict[str, Any]
    target: str | None = None  # bindings: queue bound
    routing_key: str | None = None

    def __str__(self) -> str:
        if self.kind == "binding":
            return f"binding {self.name} → {self.target} [{self.routing_key}]"
        args = ", ".join(f"{k}={v}" for k, v in self.arguments.items())
        return f"{self.kind} {self.name}" + (f" ({args})" if args else "")


def plan(table: RoutingTable, names: Names) -> list[Declaration]:
    """What must exist on the broker for ``table`` (printed by `gateway topology --dry-run`)."""
    decls = [
        Declaration("exchange", names.exchange, {"type": "topic", "durable": True}),
        Declaration("exchange", names.dead_letter_exchange, {"type": "topic", "durable": True}),
    ]
    for dest in table.destinations.values():
        args: dict[str, Any] = {"x-queue-type": dest.queue_type}
        if dest.max_length:
            args["x-max-length"] = dest.max_length
            args["x-overflow"] = "reject-publish"
        if dest.message_ttl_ms:
            args["x-message-ttl"] = dest.message_ttl_ms
        if dest.dead_letter:
            args["x-dead-letter-exchange"] = names.dead_letter_exchange
            args["x-dead-letter-routing-key"] = dest.dead_letter
        queue = names.queue(dest.queue)
        decls.append(Declaration("queue", queue, args))
        decls.append(Declaration("binding", names.exchange, {}, queue, dest.name))
        decls.append(Declaration("binding", names.dead_letter_exchange, {}, queue, dest.name))
    return decls


def declare(
    channel: pika.adapters.blocking_connection.BlockingChannel, decls: list[Declaration]
) -> None:
    for d in decls:
        if d.kind == "exchange":
            channel.exchange_declare(d.name, exchange_type=d.arguments["type"], durable=True)
        elif d.kind == "queue":
            channel.queue_declare(d.name, durable=True, arguments=d.arguments)
        else:
            channel.queue_bind(d.target, d.name, routing_key=d.routing_key)


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
