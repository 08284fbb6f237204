"""RecordService: the records API's use cases. Each call loads the facts, asks the policy
(records/access.py), writes the audit event (allowed or denied) and only then answers.

Denials raise Denied with the policy's reason; unknown documents raise NotFound. Neither
says whether a record the caller may not open holds anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from gateway.records import access
from gateway.records.access import Caller, CallerKind, DocumentFacts
from gateway.records.audit import Action, Actor, Event, Outcome
from gateway.records.store import AUDIT_PAGE, DocumentQuery, RecordStore


class Denied(Exception):
    """The policy refused; str() is the reason (audited, safe to show the caller)."""


class NotFound(Exception):
    """No such document."""


def facts(row: dict[str, Any]) -> DocumentFacts:
    return DocumentFacts(
        document_id=row["document_id"],
        patient_ins=row["patient_ins"] or "",
        author_ids=row.get("author_ids", frozenset()),
        masked=bool(row["masked"]),
        invisible_patient=bool(row["invisible_patient"]),
        invisible_representatives=bool(row["invisible_representatives"]),
        released=row["released_at"] is not None,
    )


def as_seen(row: dict[str, Any], visible: list[Any]) -> dict[str, Any]:
    """``row`` (a version the caller may see) as seen by a caller who may see only the
    versions ``visible`` of its set (document ids or rows, newest first in the order of the
    replacement chain, ``store.chain_order``, as ``RecordStore.versions`` gives them): a
    successor they may not see is not named, and when they may see no newer version, theirs
    is the current one. Otherwise "superseded by d^2" tells a patient of a version not yet
    announced to them, or a professional of one the patient masked."""
    if row["status"] != "superseded":
        return row
    ids = [v if isinstance(v, str) else v["document_id"] for v in visible]
    if row["document_id"] not in ids:
        return row
    newer = ids[: ids.index(row["document_id"])]
    if not newer:
        return {**row, "status": "current", "superseded_by": None}
    if row.get("superseded_by", newer[-1]) in newer:
        return row
    return {**row, "superseded_by": newer[-1]}  # the nearest newer one they may see


def _today() -> date:
    """Majority is reached on the French calendar date, not UTC's."""
    return access.french_date(datetime.now(UTC))


def _actor(caller: Caller, ins: str | None) -> Actor:
    """The caller as recorded in ``ins``'s trail. A patient acting on another patient's
    record is recorded there without their INS: the trail is shown to the record's patient
    (and representatives), and another person's health identifier has no place in it. The
    event stays (the attempt is traced); an operator finds it by time and action."""
    if caller.kind is CallerKind.PATIENT and ins is not None and caller.id != ins:
        return Actor(caller.kind.value, "another patient")
    return Actor.of(caller)


class RecordService:
    def __init__(self, store: RecordStore, today: Callable[[], date] = _today) -> None:
        self.store = store
        self._today = today

    def _event(self, caller: Caller, action: Action, decision, ins, doc_id=None) -> Event:
        outcome = Outcome.ALLOWED if decision else Outcome.DENIED
        return Event(_actor(caller, ins), action, outcome, ins, doc_id, decision.reason)

    def _check(self, caller: Caller, action: Action, decision, ins: str, doc_id=None) -> Event:
        """The audit event for an allowed call; a denied one is audited here and raised."""
        event = self._event(caller, action, decision, ins, doc_id)
        if not decision:
            self.store.audit(event)
            raise Denied(decision.reason)
        return event

    def _document(self, caller: Caller, action: Action, document_id: str):
        """The document row and its patient; NotFound when there is none, or when the caller
        may not know there is one (audited as denied, with the policy's reason)."""
        row = self.store.document(document_id)
        if row is None:
            self.store.audit(Event(Actor.of(caller), action, Outcome.NOT_FOUND, None, document_id))
            raise NotFound(document_id)
        patient = self.store.patient(row["patient_ins"] or "")
        doc = facts(row)
        today = self._today()
        if not access.may_know_of(caller, patient, doc, today):
            decision = access.document_access(caller, patient, doc, today)
            self.store.audit(self._event(caller, action, decision, patient.ins, document_id))
            raise NotFound(document_id)
        return row, patient

    # -- reads -----------------------------------------------------------------------------

    def list(self, caller: Caller, ins: str, query: DocumentQuery) -> list[dict[str, Any]]:
        """The patient's documents ``caller`` may see, matching ``query``."""
        patient = self.store.patient(ins)
        today = self._today()
        event = self._check(caller, Action.LIST, access.record_access(caller, patient, today), ins)
        # with history: a version whose newer ones the caller may not see is, for them, current
        rows = [
            r
            for r in self.store.query(ins, dataclasses.replace(query, include_history=True))
            if access.document_access(caller, patient, facts(r), today)
        ]
        shown = {r["document_id"] for r in rows}
        unseen_successor = {
            r["set_id"]
            for r in rows
            if r["status"] == "superseded" and r["set_id"] and r["superseded_by"] not in shown
        }
        seen = {s: self._visible_versions(caller, patient, s, today) for s in unseen_successor}
        rows = [as_seen(r, seen[r["set_id"]]) if r["set_id"] in seen else r for r in rows]
        if not query.include_history:
            rows = [r for r in rows if r["status"] == "current"]
        self.store.audit(event)
        return rows

    def read(self, caller: Caller, document_id: str) -> tuple[dict[str, Any], list[dict]]:
        """One document (with payload) and the versions of its set the caller may see."""
        row, patient = self._document(caller, Action.READ, document_id)
        today = self._today()
        decision = access.document_access(caller, patient, facts(row), today)
        event = self._check(caller, Action.READ, decision, patient.ins, document_id)
        versions = []
        if row["set_id"]:
            versions = self._visible_versions(caller, patient, row["set_id"], today)
            ids = [v["document_id"] for v in versions]
            row, versions = as_seen(row, ids), [as_seen(v, ids) for v in versions]
        self.store.audit(event)
        return row, versions

    def _visible_versions(self, caller: Caller, patient, set_id: str, today: date) -> list[dict]:
        """The versions of ``set_id`` the caller may see, newest first."""
        return [
            v
            for v in self.store.versions(set_id)
            if access.document_access(caller, patient, facts(v), today)
        ]

    def audit_trail(
        self,
        caller: Caller,
        ins: str,
        since: datetime | None = None,
        before: int | None = None,
        limit: int = AUDIT_PAGE,
    ) -> tuple[list[dict], int | None]:
        """Who looked at (and changed) the record, for the patient or their representative:
        one page, newest first, and the ``before`` of the next page (None: the last).

        Events about a document the caller may not see are left out: one not yet announced
        to the patient, one hidden from representatives, one not in this record. Listing them
        would tell what the record keeps from the caller; they appear once the caller may
        see the document. A page may therefore hold fewer than ``limit`` events."""
        patient = self.store.patient(ins)
        today = self._today()
        decision = access.may_manage(caller, patient, today)
        event = self._check(caller, Action.AUDIT, decision, ins)
        if since is not None and since.tzinfo is not None:
            since = since.astimezone(UTC)  # SQLite compares the stored UTC text
        events, next_before = self.store.audit_page(ins, since, before, limit)
        docs = self.store.visibility([e["document_id"] for e in events if e["document_id"]])

        def shown(e: dict) -> bool:
            if not e["document_id"]:
                return True
            row = docs.get(e["document_id"])
            return row is not None and bool(
                access.document_access(caller, patient, facts(row), today)
            )

        events = [e for e in events if shown(e)]
        self.store.audit(event)
        return events, next_before

    # -- changes ---------------------------------------------------------------------------

    def mask(self, caller: Caller, document_id: str, masked: bool) -> None:
        """Mask (unmask) the document from professionals: every version of its set."""
        action = Action.MASK if masked else Action.UNMASK
        row, patient = self._document(caller, action, document_id)
        today = self._today()
        decision = access.may_manage(caller, patient, today)
        if decision:
            decision = access.document_access(caller, patient, facts(row), today)
        event = self._check(caller, action, decision, patient.ins, document_id)
        self.store.set_masked(document_id, masked, event)

    def release(self, caller: Caller, document_id: str) -> bool:
        row, patient = self._document(caller, Action.RELEASE, document_id)
        today = self._today()
        decision = access.may_release(caller, patient, facts(row), today)
        event = self._check(caller, Action.RELEASE, decision, patient.ins, document_id)
        released = dataclasses.replace(facts(row), released=True)
        notify = access.notify_holders(patient, released, today)
        return self.store.release(document_id, patient.ins, event, notify)

    def decide_access(
        self, caller: Caller, ins: str, professional_id: str, decision_: str | None
    ) -> None:
        """``decision_``: "grant", "oppose", or None to revoke the previous decision."""
        action = {"grant": Action.GRANT, "oppose": Action.OPPOSE, None: Action.REVOKE}[decision_]
        patient = self.store.patient(ins)
        decision = access.may_manage(caller, patient, self._today())
        event = self._check(caller, action, decision, ins)
        event = Event(
            event.actor, action, event.outcome, ins, None, f"professional {professional_id}"
        )
        self.store.set_access(ins, professional_id, decision_, event)

    def set_attending(self, caller: Caller, ins: str, professional_id: str | None) -> None:
        patient = self.store.patient(ins)
        decision = access.may_manage(caller, patient, self._today())
        event = self._check(caller, Action.ATTENDING, decision, ins)
        self.store.set_attending(ins, professional_id, event)
