"""Audit events: who did what to which record, when, and how it went (denials included).

Written in the same transaction as the change they describe; reads write theirs right after
the read. The patient queries them: "who looked at my record".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.records.access import Caller
from gateway.records.schema import audit_events


class Action(enum.StrEnum):
    FILE = "document.file"
    WITHDRAW = "document.withdraw"
    LIST = "record.list"
    READ = "document.read"
    MASK = "document.mask"
    UNMASK = "document.unmask"
    RELEASE = "document.release"
    GRANT = "access.grant"
    OPPOSE = "access.oppose"
    REVOKE = "access.revoke"
    ATTENDING = "record.attending"
    REPRESENTATIVE = "record.representative"
    AUDIT = "record.audit"
    BIRTH_DATE = "patient.birth-date"  # outcome "changed", or "conflict" (kept, see filing)


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    NOT_FOUND = "not-found"
    # filing outcomes are the Filing values (stored, history, duplicate, withdrawn, refused…)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: an API caller, a sender (filing) or an operator (command line)."""

    kind: str
    id: str
    role: str | None = None

    @classmethod
    def of(cls, caller: Caller) -> Actor:
        return cls(caller.kind.value, caller.id, caller.role)


@dataclass(frozen=True, slots=True)
class Event:
    actor: Actor
    action: Action
    outcome: str
    patient_ins: str | None
    document_id: str | None = None
    reason: str | None = None


def row(event: Event) -> dict:
    """The audit_events row of ``event`` (filing writes a batch's rows together)."""
    actor = event.actor
    return dict(
        at=datetime.now(UTC),
        patient_ins=event.patient_ins,
        actor_kind=actor.kind,
        actor_id=actor.id[:256],
        actor_role=actor.role[:64] if actor.role else None,
        action=event.action.value,
        document_id=event.document_id,
        outcome=str(event.outcome),
        reason=event.reason[:256] if event.reason else None,
    )


def write(conn: sa.Connection, event: Event) -> None:
    conn.execute(audit_events.insert(), row(event))
