"""Patient notifications: "a document was added to your record", without clinical content.

Filing writes a row in the outbox (records/filing.py) in the same transaction as the document,
unless the document is masked or invisible to the patient. ``relay`` then sends pending rows
through a Notifier port and marks them sent, so a broker outage delays notifications without
losing them or holding documents back; a crash between send and mark sends one twice (the
message_id lets a consumer drop the copy).

The message carries the INS (to address the patient), the document id, the event and the
time: never the document type, title, author or any value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol

from gateway.broker.names import Names
from gateway.broker.publisher import OutboundMessage, Publisher
from gateway.errors import BrokerUnavailable
from gateway.logs import log

DESTINATION = "patient-notification"
FORMAT = "passerelle.notification/1"


@dataclass(frozen=True, slots=True)
class Notification:
    patient_ins: str
    document_id: str
    event: str  # "document-filed", "document-released"
    at: str  # ISO 8601 UTC

    @property
    def message_id(self) -> str:
        return f"{self.event}:{self.document_id}"


def encode(n: Notification) -> bytes:
    body = {
        "format": FORMAT,
        "event": n.event,
        "patient": {"ins": n.patient_ins},
        "document_id": n.document_id,
        "at": n.at,
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class Notifier(Protocol):
    """Sends notifications in order; returns once all are durable, raises BrokerUnavailable
    if not (then none counts as sent)."""

    def __call__(self, notifications: Sequence[Notification]) -> None: ...


class BrokerNotifier:
    """Publishes to the ``patient-notification`` destination with the gateway's confirmed
    publisher (routing key = destination name on the documents exchange)."""

    def __init__(self, publisher: Publisher, names: Names, timeout_s: float = 10.0) -> None:
        self._publisher = publisher
        self._names = names
        self._timeout = timeout_s

    def __call__(self, notifications: Sequence[Notification]) -> None:
        messages = [
            OutboundMessage(
                exchange=self._names.exchange,
                routing_key=DESTINATION,
                body=encode(n),
                message_id=n.message_id,
                type="notification",
            )
            for n in notifications
        ]
        try:  # one publish: the confirms of the batch are awaited together
            self._publisher.publish(messages).result(self._timeout)
        except FutureTimeout:
            raise BrokerUnavailable(
                f"notifications not confirmed within {self._timeout}s"
            ) from None


def relay(
    pending: Callable[[int], list[dict]],
    mark_sent: Callable[[Sequence[int]], None],
    notifier: Notifier,
    limit: int = 100,
) -> int:
    """Send up to ``limit`` pending notifications, in order and confirmed together, then mark
    them sent in one statement (a confirm wait and a commit per relay, not per notification).
    Returns how many were sent."""
    rows = pending(limit)
    if not rows:
        return 0
    notes = [
        Notification(
            patient_ins=row["patient_ins"],
            document_id=row["document_id"],
            event=row["event"],
            at=row["created_at"].isoformat(),
        )
        for row in rows
    ]
    try:
        notifier(notes)
    except BrokerUnavailable as exc:
        log(
            "notification.deferred",
            level=30,
            document_id=notes[0].document_id,
            count=len(notes),
            reason=str(exc),
        )
        return 0
    mark_sent([row["id"] for row in rows])
    return len(rows)
