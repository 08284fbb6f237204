"""The patient-record consumer's handler: messages → checks → filing → commit (then ack).

A batch of deliveries is checked one by one (decoding, envelope seal, routing to the record,
hash, signature: what fails is poison), then the good ones are filed in one transaction, each
inside its own savepoint (records/store.py), and the notification outbox is relayed once for
the batch.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Sequence

from gateway.broker.consumer import Batched, Delivery, Poison
from gateway.broker.message import DocumentMessage, MalformedMessage, decode_sealed
from gateway.errors import StoreUnavailable
from gateway.logs import log
from gateway.records.notify import Notifier, relay
from gateway.records.store import Filing, RecordStore
from gateway.signing import Verifier

# Filings that can never succeed as sent: park them with the reason (the store's own, when it
# gave one: records/filing.py says which conflict it was).
REFUSALS = {
    Filing.CONFLICT: "conflicts with what is filed",
    Filing.REFUSED: "withdrawal refused: not the sender and custodian that filed the document",
    Filing.ORPHAN: "withdrawal names no filed document",
}


BATCH_SIZE = 32  # deliveries filed per transaction at most (with a backlog)


class RecordWorker:
    """Files deliveries: ``batched`` for the consumer, or one per call. Reports a delivery as
    done only once the database committed it.

    ``seal_key`` set: a message is filed only with the gateway's seal, and only if the
    destinations it sealed name one of ``files_for`` (the destinations whose queues the record
    consumers take: bootstrap.record_destinations); with none, nothing sealed is filed."""

    def __init__(
        self,
        store: RecordStore,
        verifier: Verifier | None = None,
        notifier: Notifier | None = None,
        seal_key: bytes | None = None,
        files_for: Collection[str] = (),
    ) -> None:
        self._store = store
        self._verifier = verifier
        self._notifier = notifier
        self._seal_key = seal_key  # set: envelopes without the gateway's seal are refused
        self._files_for = frozenset(files_for)
        # Consumer threads share this worker: one relays the outbox at a time, or two could
        # read the same pending notification and both send it.
        self._relaying = threading.Lock()

    def batched(self, size: int = BATCH_SIZE) -> Batched:
        return Batched(self.file_batch, size)

    def __call__(self, delivery: Delivery) -> None:
        (outcome,) = self.file_batch([delivery])
        if outcome is not None:
            raise outcome

    def file_batch(self, deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        """One outcome per delivery: None once committed, else why not (Poison: park it;
        StoreUnavailable: requeue it, the store failed the batch)."""
        outcomes: list[BaseException | None] = [None] * len(deliveries)
        checked: list[tuple[int, DocumentMessage, str]] = []
        reasons: dict[str, str] = {}
        for i, delivery in enumerate(deliveries):
            try:
                checked.append((i, *self._checked(delivery)))
            except Exception as exc:
                outcomes[i] = exc
        try:
            filings: list = self._store.file_many(
                [(m, status) for _, m, status in checked], reasons
            )
        except StoreUnavailable as exc:  # for the checked ones: the poison is still parked
            filings = [exc] * len(checked)
        filed = False
        for (i, message, _), filing in zip(checked, filings, strict=True):
            if isinstance(filing, BaseException):
                outcomes[i] = filing
            elif filing in REFUSALS:
                why = reasons.get(message.envelope.document_id)
                outcomes[i] = Poison(f"{filing.value}: {why}" if why else REFUSALS[filing])
            else:
                filed = True
                env = message.envelope
                log(
                    "record.filed",
                    trace_id=env.trace_id,
                    document_id=env.document_id,
                    outcome=filing.value,
                    sender=env.sender,
                )
        if filed and self._notifier is not None:
            with self._relaying:
                relay(self._store.pending_notifications, self._store.mark_notified, self._notifier)
        return outcomes

    def _checked(self, delivery: Delivery) -> tuple[DocumentMessage, str]:
        """The decoded message and its signature status; Poison when it must not be filed.

        The envelope is what is filed by (patient, masking, action, replaces …) and the
        signature covers the payload only: the seal says the envelope is the gateway's, and
        the hash check then ties the payload to it. One body goes to every destination of its
        format, so the seal also covers where the gateway routed the document: a body copied
        from another queue (patient-mailbox, parking) into this one is not filed."""
        try:
            received = decode_sealed(delivery.body)
        except MalformedMessage as exc:
            raise Poison(str(exc)) from None
        if self._seal_key is not None:
            if received.seal is None:
                raise Poison("the envelope has no seal: not published by a current gateway")
            if received.routed is None:
                raise Poison(
                    "the envelope seal names no routing: sealed by a gateway before "
                    "envelope-seal/2, or altered in transit"
                )
            if not received.sealed_with(self._seal_key):
                raise Poison(
                    "the envelope seal does not match: altered in transit, or sealed with "
                    "another envelope key"
                )
            if self._files_for.isdisjoint(received.routed):
                routed = ", ".join(received.routed) or "nowhere"
                raise Poison(f"not routed to the record: the gateway routed it to {routed}")
        message = received.message
        env = message.envelope
        if hashlib.sha256(message.payload).hexdigest() != env.sha256:
            raise Poison("payload hash does not match the envelope: altered in transit")
        if delivery.message_id and delivery.message_id != env.document_id:
            raise Poison("AMQP message_id does not match the envelope's document id")
        if self._verifier is None:
            return message, "unsigned" if env.signature is None else "unchecked"
        verification = self._verifier.verify(env, message.payload)
        if not verification.valid:
            raise Poison(f"{verification.rule}: {verification.reason}")
        return message, "verified"
