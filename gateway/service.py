"""IngestService: the one entry every transport calls. Pipeline, then a confirmed publish.

It turns an Outcome into a Receipt only after RabbitMQ answered, so a transport can never tell
a sender "accepted" for something that is not durable. Faults (broker down, confirm timeout,
an unexpected error) become UNAVAILABLE receipts: the sender keeps the message and retries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import Executor

from gateway.broker.loop_publisher import LoopPublisher
from gateway.broker.message import (
    CONTENT_TYPE,
    CONTENT_TYPES,
    DocumentMessage,
    encode,
    encode_deidentified,
    encode_rejection,
    headers,
)
from gateway.broker.names import Names
from gateway.broker.publisher import OutboundMessage, Publisher
from gateway.errors import BrokerUnavailable
from gateway.findings import Finding, Report, error
from gateway.logs import frames, log
from gateway.metrics import Metrics
from gateway.outcome import Accepted, Outcome, Receipt, ReceiptStatus, Rejected, RejectionKind
from gateway.pipeline import Tools, ingest
from gateway.security.authorisation import authorise
from gateway.security.senders import SenderRegistry
from gateway.submission import Submission
from gateway.tracking import events
from gateway.tracking.tracker import NullTracker, Tracker
from gateway.workers import PipelineWorkers

PIPELINE_TIMEOUT_S = 30.0  # the pipeline's deadline in threads (the default request timeout)


class IngestService:
    def __init__(
        self,
        tools: Tools,
        publisher: Publisher | LoopPublisher,
        names: Names,
        executor: Executor | None = None,
        publish_timeout_s: float = 10.0,
        tracker: Tracker | None = None,
        metrics: Metrics | None = None,
        workers: PipelineWorkers | None = None,
        senders: SenderRegistry | None = None,
        pipeline_timeout_s: float | None = None,
    ) -> None:
        self.tools = tools  # replaced whole on reload (routing.yaml, keys); never mutated
        self._publisher = publisher
        self._names = names
        self._executor = executor
        self._timeout = publish_timeout_s
        self._tracker = tracker or NullTracker()
        self.metrics = metrics or Metrics()
        self._workers = workers  # when set, the pipeline runs there, on every core
        self._senders = senders  # None: authentication off, nothing to authorise against
        # The pipeline's deadline (waiting for a worker included): past it, "unavailable",
        # and its result, should it come, is dropped. Default: the workers' job timeout
        # (GATEWAY_REQUEST_TIMEOUT), else PIPELINE_TIMEOUT_S.
        if pipeline_timeout_s is None:
            pipeline_timeout_s = workers.job_timeout_s if workers else PIPELINE_TIMEOUT_S
        self._pipeline_timeout = pipeline_timeout_s
        _warn_unbound_signers(tools, senders)

    async def accept(self, submission: Submission) -> Receipt:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        tools = self.tools  # one routing table for the whole submission, even across a reload
        self._tracker.record(events.received(submission))
        outcome = None
        try:
            async with asyncio.timeout(self._pipeline_timeout) as deadline:
                if self._workers is not None:  # other cores; routed here, with the live table
                    outcome = await self._workers.ingest(submission, tools.routing)
                else:
                    outcome = await loop.run_in_executor(self._executor, ingest, submission, tools)
            if deadline.expired():  # (asyncio.timeout raises then; a late result never counts)
                raise TimeoutError
        except TimeoutError:  # stuck, or no worker free: the sender retries; nothing published
            return self._overdue(submission, started)
        except Exception as exc:  # a bug, not the sender's fault: do not take responsibility
            log(
                "ingest.failed",
                level=40,
                trace_id=submission.trace_id,
                error=type(exc).__name__,
                where=frames(exc),
            )
            receipt = Receipt(
                ReceiptStatus.UNAVAILABLE,
                submission.trace_id,
                reason="internal error while processing; retry later",
            )
            self._observe(submission, None, receipt, started)
            return receipt
        if isinstance(outcome, Accepted) and self._senders is not None:
            outcome = self._authorised(outcome, submission, tools)
        self._tracker.record(events.judged(submission, outcome))
        if isinstance(outcome, Rejected):
            receipt = Receipt(
                ReceiptStatus.REJECTED,
                submission.trace_id,
                findings=outcome.report.findings,
                rejection=outcome.kind,
            )
            await self._publish_rejection(outcome, submission, tools)
        else:
            receipt = await self._publish(outcome, submission, tools)
        log(
            "ingest.done",
            trace_id=submission.trace_id,
            transport=submission.transport,
            sender=submission.sender,
            status=receipt.status.value,
            rejection=receipt.rejection.value if receipt.rejection else None,
            document_id=receipt.document_id,
            rules=sorted({f.rule for f in receipt.findings if f.is_error}) or None,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        self._observe(submission, outcome, receipt, started)
        return receipt

    def _overdue(self, submission: Submission, started: float) -> Receipt:
        """The receipt for a pipeline past its deadline: unavailable, retry later."""
        reason = f"not processed within {self._pipeline_timeout}s; retry later"
        log(
            "ingest.overdue",
            level=30,
            trace_id=submission.trace_id,
            transport=submission.transport,
            sender=submission.sender,
            reason=reason,
        )
        receipt = Receipt(ReceiptStatus.UNAVAILABLE, submission.trace_id, reason=reason)
        self._observe(submission, None, receipt, started)
        return receipt

    def _authorised(self, accepted: Accepted, submission: Submission, tools: Tools) -> Outcome:
        """The outcome, or a rejection (audited) when the sender may not submit all of it: its
        signature made with another certificate than its own (INVALID, like every signature
        refusal), or a grant missing for any one of its documents (FORBIDDEN). A message
        carrying several documents is accepted whole or refused whole: nothing is published."""
        sender = self._senders.get(submission.sender)
        if sender is None:
            return self._denied(submission, error("auth.sender", "unknown sender", layer="auth"))
        inbound = tools.inbound
        if inbound is not None:
            wrong = inbound.signed_by(submission.signature, sender.id, sender.signing_identity)
            if wrong:
                return self._denied(submission, wrong[0], RejectionKind.INVALID)
        documents = (accepted, *accepted.related)
        for position, document in enumerate(documents, start=1):
            denial = authorise(sender, document.envelope)
            if denial is None:
                continue
            if len(documents) > 1:  # say which document of the message lacks the grant
                denial = dataclasses.replace(
                    denial,
                    message=f"document {position} of {len(documents)} "
                    f"({document.envelope.document_id}): {denial.message}; "
                    "no document of the message was accepted",
                )
            return self._denied(submission, denial)
        return accepted

    def _denied(
        self,
        submission: Submission,
        denial: Finding,
        kind: RejectionKind = RejectionKind.FORBIDDEN,
    ) -> Rejected:
        log(
            "security.denied",
            level=30,
            trace_id=submission.trace_id,
            sender=submission.sender,
            transport=submission.transport,
            rules=[denial.rule],
            reason=denial.message,
        )
        return Rejected(Report.of([denial]), kind)

    async def _publish_rejection(
        self, rejected: Rejected, submission: Submission, tools: Tools
    ) -> None:
        """Best effort: the sender already has the report; the `rejected` queue is a copy for
        their integration team, so a broker fault here does not change the receipt."""
        if tools.routing.rejected is None:
            return
        message = OutboundMessage(
            exchange=self._names.exchange,
            routing_key=tools.routing.rejected,
            body=encode_rejection(submission, rejected),
            message_id=submission.trace_id,
            correlation_id=submission.trace_id,
            type="rejection",
            headers={"x-sender": submission.sender, "x-rejection": rejected.kind.value},
        )
        try:
            future = self._publisher.publish([message])
            await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
        except (BrokerUnavailable, TimeoutError) as exc:
            log(
                "rejected.not-published",
                level=30,
                trace_id=submission.trace_id,
                error=type(exc).__name__,
            )

    def _observe(self, submission: Submission, outcome, receipt: Receipt, started: float) -> None:
        self._tracker.record(events.answered(submission, receipt))
        self.metrics.observe_ingest(submission, outcome, receipt, time.perf_counter() - started)

    def _messages(self, accepted: Accepted, tools: Tools) -> list[OutboundMessage]:
        env = accepted.envelope
        document = DocumentMessage(env, accepted.payload, accepted.attachments)
        plain = env.to_dict()  # the envelope's JSON form, once for every body below
        bodies: dict[str, bytes] = {}  # by format: each encoded once, whatever the destinations
        messages = []
        for name in accepted.destinations:
            destination = tools.routing.destinations.get(name)
            if destination is not None and destination.strips_patient:
                body, content_type = encode_deidentified(env, plain), CONTENT_TYPE
            else:
                fmt = tools.routing.format_of(name)
                if fmt not in bodies:
                    # sealed with the whole routing decision: one body for every destination
                    # of this format, and a record consumer files only what was routed to it
                    bodies[fmt] = encode(
                        document, fmt, plain, tools.seal_key, routed=accepted.destinations
                    )
                body, content_type = bodies[fmt], CONTENT_TYPES[fmt]
            messages.append(
                OutboundMessage(
                    exchange=self._names.exchange,
                    routing_key=name,
                    body=body,
                    message_id=env.document_id,
                    correlation_id=env.trace_id,
                    content_type=content_type,
                    headers=headers(env),
                )
            )
        return messages

    async def _publish(self, accepted: Accepted, submission: Submission, tools: Tools) -> Receipt:
        env = accepted.envelope
        # Documents of one submission (e.g. an ORU's level-1 and level-3 CDA) are confirmed
        # together: the sender is told "accepted" only once every one of them is durable.
        messages = [m for a in (accepted, *accepted.related) for m in self._messages(a, tools)]
        published = time.perf_counter()
        confirm = self.metrics.publish_seconds
        try:
            future = self._publisher.publish(messages)
            await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
            confirm.labels("confirmed").observe(time.perf_counter() - published)
        except BrokerUnavailable as exc:
            confirm.labels("failed").observe(time.perf_counter() - published)
            return Receipt(
                ReceiptStatus.UNAVAILABLE,
                submission.trace_id,
                document_id=env.document_id,
                reason=str(exc),
            )
        except TimeoutError:
            confirm.labels("timeout").observe(time.perf_counter() - published)
            return Receipt(
                ReceiptStatus.UNAVAILABLE,
                submission.trace_id,
                document_id=env.document_id,
                reason=f"RabbitMQ did not confirm within {self._timeout}s",
            )
        return Receipt(
            ReceiptStatus.ACCEPTED,
            submission.trace_id,
            document_id=env.document_id,
            findings=env.warnings,
            destinations=accepted.destinations,
        )


def _warn_unbound_signers(tools: Tools, senders: SenderRegistry | None) -> None:
    """Say loudly at start when senders that must sign cannot have their signatures tied to
    them: with a senders file, their signed documents are all refused (no signing_subject);
    without one, any certificate chaining to the trust store is taken for theirs."""
    if tools.inbound is None or not tools.inbound.policy.must_sign:
        return
    if senders is None:
        log(
            "security.unbound-signers",
            level=30,
            reason="GATEWAY_SIGNED_SENDERS without a senders file: a signature is checked "
            "against the trust store only, not tied to its sender",
        )
        return
    unbound = sorted(
        s.id for s in senders if s.signing_identity is None and tools.inbound.policy.requires(s.id)
    )
    if unbound:
        log(
            "security.unbound-signers",
            level=40,
            count=len(unbound),
            reason="senders that must sign name no signing_subject; their signed documents are "
            f"refused: {', '.join(unbound)}",
        )
