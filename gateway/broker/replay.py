"""Re-publish parked messages to the destination they were meant for, after a fix.

Takes at most the messages present when it starts (so what it re-publishes, or what fails
again and comes back, is never taken twice in one run). A message is acked in the parking
queue only once its re-publication is confirmed; messages that do not match the filters, or
whose destination cannot be told or does not take them, are put back untouched.

A queue cannot be searched without taking its messages, so every message looked at counts as
a delivery for a quorum queue's delivery limit. How the others go back matters by version
(RabbitMQ's quorum queue guide, "When is delivery count incremented?"): from 4.3 an explicit
``basic.nack`` with requeue does not count toward the limit while a channel or connection that
closes with them unacked does (and ``basic.reject`` does); before 4.3 every return counts,
either way (3.10.8: a nack and a channel close each added one to x-delivery-count). So they are
nacked, explicitly, in one frame before the channel closes; the channel closing is only the
fallback after a failure. What makes scans harmless everywhere is the parking queue having no
delivery limit (broker.topology).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pika
import pika.exceptions

from gateway.broker import names as h
from gateway.broker.connection import open_blocking
from gateway.broker.message import moved
from gateway.broker.names import Names
from gateway.broker.publisher import PUBLISH_ID
from gateway.errors import BrokerUnavailable


@dataclass(frozen=True, slots=True)
class Filter:
    """``key=value`` (equal) or ``key~regex`` (search) over a message's headers and ids.

    ``key`` is a header name, with or without its ``x-`` / ``x-passerelle-`` prefix
    (``failure``, ``destination``, ``type-code``, ``sender`` …), or ``document_id`` /
    ``trace_id``.
    """

    key: str
    value: str
    regex: bool = False

    @classmethod
    def parse(cls, text: str) -> Filter:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)([=~])(.*)", text)
        if not match:
            raise ValueError(f"filter {text!r}: expected KEY=VALUE or KEY~REGEX")
        key, op, value = match.groups()
        if op == "~":
            re.compile(value)  # re.error is a ValueError: reported as a usage error
        return cls(key, value, op == "~")

    def matches(self, properties: pika.BasicProperties) -> bool:
        found = _lookup(properties, self.key)
        if found is None:
            return False
        text = found.decode() if isinstance(found, bytes) else str(found)
        return bool(re.search(self.value, text)) if self.regex else text == self.value


@dataclass
class ReplayResult:
    replayed: list[tuple[str, str]] = field(default_factory=list)  # (document id, destination)
    skipped: int = 0  # did not match the filters
    failed: list[tuple[str, str]] = field(default_factory=list)  # (document id, why)


def replay(
    url: str,
    names: Names,
    source_queue: str,
    filters: Sequence[Filter] = (),
    to: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    queue_to_destination: Callable[[str], str | None] = lambda _q: None,
) -> ReplayResult:
    """Move matching messages from ``source_queue`` back to their destination (or ``to``)."""
    conn = open_blocking(url)
    result = ReplayResult()
    held: list[int] = []
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        present = channel.queue_declare(source_queue, passive=True).method.message_count
        for _ in range(present):
            if limit is not None and len(result.replayed) >= limit:
                break
            method, props, body = channel.basic_get(source_queue, auto_ack=False)
            if method is None:
                break
            doc = props.message_id or "?"
            if not all(f.matches(props) for f in filters):
                result.skipped += 1
                held.append(method.delivery_tag)
                continue
            target = to or destination_of(props, queue_to_destination)
            if target is None:
                result.failed.append((doc, "no destination header; use --to"))
                held.append(method.delivery_tag)
                continue
            if dry_run:
                result.replayed.append((doc, target))
                held.append(method.delivery_tag)
                continue
            try:
                channel.basic_publish(names.exchange, target, body, _fresh(props), mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
                result.failed.append((doc, f"no queue takes routing key {target!r}"))
                held.append(method.delivery_tag)
                continue
            channel.basic_ack(method.delivery_tag)
            result.replayed.append((doc, target))
        if held:  # every delivery still unacked on this channel is a held one: one frame
            channel.basic_nack(held[-1], multiple=True, requeue=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise BrokerUnavailable(f"RabbitMQ refused: {exc.reply_text}") from None
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise BrokerUnavailable(f"replay interrupted: {type(exc).__name__}") from None
    finally:
        if conn.is_open:
            conn.close()  # anything still unacked goes back to the queue
    return result


def destination_of(
    props: pika.BasicProperties, queue_to_destination: Callable[[str], str | None]
) -> str | None:
    """Where a parked message was going: our header, else what RabbitMQ's x-death says."""
    headers = props.headers or {}
    if headers.get(h.DESTINATION):
        return _text(headers[h.DESTINATION])
    for death in headers.get("x-death") or []:
        keys = death.get("routing-keys") or []
        if keys:
            return _text(keys[0])
        if death.get("queue"):
            return queue_to_destination(_text(death["queue"]))
    return None


def _fresh(props: pika.BasicProperties) -> pika.BasicProperties:
    """The message's properties without the failure history, counting the replay."""
    headers = {
        k: v
        for k, v in (props.headers or {}).items()
        if k not in h.GATEWAY_HEADERS
        and k not in ("x-death", PUBLISH_ID)
        and not k.startswith("x-first-death")
        and not k.startswith("x-last-death")
    }
    headers[h.REPLAYED] = int(headers.get(h.REPLAYED) or 0) + 1
    return moved(props, headers)


def _lookup(props: pika.BasicProperties, key: str):
    if key in ("document_id", "message_id"):
        return props.message_id
    if key in ("trace_id", "correlation_id"):
        return props.correlation_id
    headers = props.headers or {}
    for name in (key, f"x-{key}", f"x-passerelle-{key}"):
        if name in headers:
            return headers[name]
    return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
