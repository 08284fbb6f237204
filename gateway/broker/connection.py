"""Connection parameters and the translation of pika's failures into gateway faults."""

from __future__ import annotations

import urllib.parse

import pika
import pika.exceptions

from gateway.errors import BrokerUnavailable


def parameters(url: str, heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 60
    params.client_properties = {"connection_name": "passerelle"}
    return params


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def open_blocking(url: str) -> pika.BlockingConnection:
    """A blocking connection for short administrative work (topology, replay, CLI)."""
    try:
        return pika.BlockingConnection(parameters(url))
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise BrokerUnavailable(
            f"cannot reach RabbitMQ at {redact(url)} ({type(exc).__name__})"
        ) from None
