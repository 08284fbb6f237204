"""The patient-record consumer's handler: message → checks → filing → commit (then ack)."""

from __future__ import annotations

import hashlib

from gateway.broker.consumer import Delivery, Poison
from gateway.broker.message import MalformedMessage, decode
from gateway.logs import log
from gateway.records.store import Filing, RecordStore
from gateway.signing import Verifier


class RecordWorker:
    """Files one delivery. Returns normally only once the database committed."""

    def __init__(self, store: RecordStore, verifier: Verifier | None = None) -> None:
        self._store = store
        self._verifier = verifier

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
        if self._verifier is not None:
            verification = self._verifier.verify(env, message.payload)
            if not verification.valid:
                raise Poison(f"{verification.rule}: {verification.reason}")
        filing = self._store.file(message)
        if filing is Filing.CONFLICT:
            raise Poison("a different document with the same id is already filed")
        log(
            "record.filed",
            trace_id=env.trace_id,
            document_id=env.document_id,
            outcome=filing.value,
            sender=env.sender,
        )
