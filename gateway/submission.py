"""Submission: one inbound message as a transport received it, before anything judged it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime


def new_trace_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Submission:
    """Raw bytes plus who sent them and how.

    ``sender`` is the authenticated sender identity (client certificate, API key) or, while
    authentication is off, a label of the peer. ``trace_id`` follows the message through logs,
    tracking and the AMQP message (correlation id).
    """

    raw: bytes
    transport: str  # "http", "mllp", "cli"
    sender: str = "anonymous"
    received_at: datetime = field(default_factory=utc_now)
    trace_id: str = field(default_factory=new_trace_id)
    signature: bytes | None = None  # the sender's detached signature, when one came with it
