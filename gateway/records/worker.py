"""The patient-record consumer's handler: message → checks → filing → commit (then ack)."""

from __future__ import annotations

import hashlib
import threading

from gateway.broker.consumer import Delivery, Poison
from gateway.broker.message import MalformedMessage, decode
from gateway.logs import log
from gateway.records.notify import Notifier, relay
from gateway.records.store import Filing, RecordStore
from gateway.signing import Verifier

# Filings that can never succeed as sent: park them with the reason.
REFUSALS = {
    Filing.CONFLICT: "a different document with the same id (or set and version) is already filed",
    Filing.REFUSED: "withdrawal requested by an organisation that did not author the document",
    Filing.ORPHAN: "withdrawal names no filed document",
}


class RecordWorker:
    """Files one delivery. Returns normally only once the database committed."""

    def __init__(
        self,
        store: RecordStore,
        verifier: Verifier | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self._store = store
        self._verifier = verifier
        self._notifier = notifier
        # Consumer threads share this worker: one relays the outbox at a time, or two could
        # read the same pending notification and both send it.
        self._relaying = threading.Lock()

    def __call__(self, delivery: Delivery) -> None:
        try:
            message = decode(delivery.body)
        except MalformedMessage as exc:
            raise Poison(str(exc)) from None
        env = message.envelope
        if hashlib.sha256(message.payload).hexdigest() != env.sha256:
            raise Poison("payload hash does not match the envelope: altered in transit")
        if delivery.message_id and delivery.message_id != env.document_id:
            raise Poison("AMQP message_id does not match the envelope's document id")
        signature_status = "unsigned" if env.signature is None else "unchecked"
        if self._verifier is not None:
            verification = self._verifier.verify(env, message.payload)
            if not verification.valid:
                raise Poison(f"{verification.rule}: {verification.reason}")
            signature_status = "verified"
        filing = self._store.file(message, signature_status)
        if filing in REFUSALS:
            raise Poison(REFUSALS[filing])
        log(
            "record.filed",
            trace_id=env.trace_id,
            document_id=env.document_id,
            outcome=filing.value,
            sender=env.sender,
        )
        if self._notifier is not None:
            with self._relaying:
                relay(self._store.pending_notifications, self._store.mark_notified, self._notifier)
