"""Tracking events: what happened to one inbound message, as metadata only. Pure.

Each step of a message's life (received, validated, signed, routed, accepted, rejected,
unavailable, filed, retrying, parked, given-up, replayed) becomes one Event keyed by the trace
id. Events never carry the payload nor the patient's identity: they are built from the
submission's transport facts, the envelope's non-clinical fields and the validation findings —
and every free text among them goes through ``mask_ins`` (INS-shaped runs masked) because a
finding message or an HL7 control id is written by the sender, who may have pasted an
identifier into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.adapters import detect
from gateway.adapters.hl7v2.parser import parse_header
from gateway.broker.failure import mask_ins
from gateway.outcome import Accepted, Receipt, ReceiptStatus, Rejected
from gateway.submission import Submission

RECEIVED, VALIDATED, SIGNED, ROUTED = "received", "validated", "signed", "routed"
ACCEPTED, REJECTED, UNAVAILABLE = "accepted", "rejected", "unavailable"
FILED, PARKED, REPLAYED = "filed", "parked", "replayed"
# Timeline only (the status stays): a consumer failed it and sent it to a retry queue, or
# rejected it with no parking to send it to (the queue's own dead-lettering decides).
RETRYING, GIVEN_UP = "retrying", "given-up"

# Which statuses an event may replace in the message summary. Events of one message can be
# recorded out of order across threads (a consumer may file before the service records the
# broker's confirm; a replayed message may be parked again before the replay is recorded), so
# a status only moves forward, and never to an event older than the one that set it.
STATUS_REPLACES: dict[str, frozenset[str] | None] = {
    ACCEPTED: frozenset({RECEIVED}),
    REJECTED: frozenset({RECEIVED}),
    UNAVAILABLE: frozenset({RECEIVED}),
    PARKED: frozenset({RECEIVED, ACCEPTED, REPLAYED}),
    REPLAYED: frozenset({PARKED}),
    FILED: None,  # any
}
STATUSES = (RECEIVED, ACCEPTED, REJECTED, UNAVAILABLE, FILED, PARKED, REPLAYED)


PACK_LAYER = "pack:"  # findings of the conformance pack (gateway/conformance)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One step. ``summary`` updates the message's row (sender, kind …); ``detail`` is shown
    in its timeline."""

    trace_id: str
    name: str
    at: datetime = field(default_factory=utc_now)
    summary: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_ins(value)
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return value


def masked_control_id(msh_10: str) -> str:
    """MSH-10 as tracking keeps it, INS-shaped runs masked. A search by control id goes
    through the same function (TrackingStore.search), so a sender finds its message by the
    value it sent: an ordinary id is kept as is; a 15-character NIR-shaped one is kept masked
    and also matches the other messages with the same masked form (narrow by sender or date).
    """
    return mask_ins(msh_10)[:64]


def received(submission: Submission) -> Event:
    summary: dict[str, Any] = {
        "transport": submission.transport,
        "sender": submission.sender[:256],
        "size": len(submission.raw),
        "received_at": submission.received_at,
    }
    kind = detect(submission.raw)
    if kind:
        summary["kind"] = kind
    if kind == "hl7v2":
        header = parse_header(submission.raw[:4096])
        if header is not None:
            summary["control_id"] = masked_control_id(header.msh.field(10))
            summary["message_type"] = "^".join(p for p in header.message_type if p)[:32]
    return Event(submission.trace_id, RECEIVED, submission.received_at, summary)


def judged(submission: Submission, outcome: Accepted | Rejected) -> list[Event]:
    """validated + signed + routed for an accepted outcome; nothing yet for a rejection
    (``answered`` records it with its report)."""
    if isinstance(outcome, Rejected):
        return []
    env = outcome.envelope
    tid = submission.trace_id
    summary = {
        "kind": env.source_kind,
        "document_id": env.document_id[:256],
        "type_code": env.type_code.code[:64] if env.type_code else None,
    }
    events = [
        Event(
            tid,
            VALIDATED,
            summary=summary,
            detail={
                "document_id": env.document_id,
                "type_code": summary["type_code"],
                "warnings": [_finding(f.to_dict()) for f in env.warnings],
            },
        )
    ]
    if env.signature is not None:
        events.append(
            Event(tid, SIGNED, detail={"key_id": env.signature.key_id, "form": env.signature.form})
        )
    events.append(
        Event(
            tid,
            ROUTED,
            summary={"destinations": ",".join(outcome.destinations)[:512]},
            detail={"destinations": list(outcome.destinations)},
        )
    )
    return events


def answered(submission: Submission, receipt: Receipt) -> Event:
    """What the sender was told: accepted (durable), rejected (with the report) or unavailable."""
    tid = submission.trace_id
    if receipt.status is ReceiptStatus.ACCEPTED:
        return Event(tid, ACCEPTED, detail={"destinations": list(receipt.destinations)})
    if receipt.status is ReceiptStatus.REJECTED:
        errors = sorted({f.rule for f in receipt.findings if f.is_error})
        return Event(
            tid,
            REJECTED,
            summary={"rules": ",".join(errors)[:512]},
            detail={
                "rejection": receipt.rejection.value if receipt.rejection else None,
                "report": [_finding(f.to_dict()) for f in receipt.findings],
            },
        )
    return Event(tid, UNAVAILABLE, detail={"reason": mask_ins(receipt.reason or "")})


def filed(trace_id: str, destination: str, document_id: str | None) -> Event:
    return Event(trace_id, FILED, detail={"destination": destination, "document_id": document_id})


def parked(trace_id: str, destination: str, reason: str) -> Event:
    return Event(
        trace_id, PARKED, detail={"destination": destination, "reason": mask_ins(reason)[:300]}
    )


def retrying(
    trace_id: str, destination: str, attempt: int, delay_ms: int | None, reason: str
) -> Event:
    """Failed ``attempt`` times; back on ``destination`` after ``delay_ms`` (a retry queue)."""
    detail = {"destination": destination, "attempt": attempt, "reason": mask_ins(reason)[:300]}
    if delay_ms is not None:
        detail["delay_ms"] = delay_ms
    return Event(trace_id, RETRYING, detail=detail)


def given_up(trace_id: str, destination: str, reason: str) -> Event:
    """Rejected by ``destination``'s consumer with no parking to copy it to."""
    return Event(
        trace_id, GIVEN_UP, detail={"destination": destination, "reason": mask_ins(reason)[:300]}
    )


def replayed(
    trace_id: str, destination: str, at: datetime | None = None, operator: str | None = None
) -> Event:
    """Sent back to ``destination``; by ``operator`` (their token's name) when one asked."""
    detail = {"destination": destination}
    if operator:
        detail["operator"] = operator
    return Event(trace_id, REPLAYED, at or utc_now(), detail=detail)


def left_parked(trace_id: str, reasons: list[str] | tuple[str, ...]) -> Event:
    """A replay sent some copies back but could not send these (``reasons``): the message is
    still parked, and its replay button stays."""
    reason = mask_ins("; ".join(reasons))[:300]
    return Event(trace_id, PARKED, detail={"reason": f"not replayed: {reason}"})


def _finding(data: dict[str, Any]) -> dict[str, Any]:
    keep = ("rule", "severity", "location", "message", "fix", "layer", "line")
    kept = {k: _masked(data[k]) for k in keep if k in data}
    if str(data.get("layer", "")).startswith(PACK_LAYER):
        # The pack's messages are the schematrons' text with values of the document put in
        # (a birth date, an identifier, every attribute of an element): the sender's report
        # keeps them, operators get the rule and where it failed.
        kept["message"] = "(the pack's message quotes the document: in the sender's report)"
        kept.pop("fix", None)
    return kept
