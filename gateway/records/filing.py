"""Filing one document message into the record, inside one transaction.

- idempotent on the document id (same content: DUPLICATE; other content: CONFLICT);
- versions of one setId: the set row names the current version; a newer version supersedes it
  (the old one stays, as history); a stale version arriving late is filed as history and never
  becomes current (``placement`` decides, pure);
- a replacement files into the set of the document it replaces: one naming another set, or
  another patient's document, is a CONFLICT (never two current versions);
- the patient's mask, an unreleased invisibility to the patient and an invisibility to the
  representatives hold for the whole set: a version filed into such a set takes them;
- demographics (the birth date that decides minority) come only from a document that becomes
  current and is newer than the one that gave them; a birth date that would turn an adult into
  a minor (or back) is kept as it was and the conflict audited (``Batch.patient``);
- ``action == "delete"``: withdraws a document (marked, not erased) when the request comes
  from the sender that filed it, for the same custodian (``_may_withdraw``); anything else is
  REFUSED;
- a current document the account holders may see queues a notification in the outbox
  (``access.notify_holders``).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.broker.message import DocumentMessage
from gateway.envelope import Envelope
from gateway.records import audit
from gateway.records.access import (
    DocumentFacts,
    PatientFacts,
    birth_range,
    french_date,
    notify_holders,
)
from gateway.records.in_lists import chunks
from gateway.records.schema import (
    audit_events,
    document_authors,
    document_sets,
    documents,
    notifications,
    patients,
)

MASKED = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTATIVES = ("INVISIBLE_REPRESENTANTS_LEGAUX", "INVISIBLE_REP_LEGAUX")
NOTIFY_FILED = "document-filed"
NOTIFY_RELEASED = "document-released"


class Filing(enum.StrEnum):
    STORED = "stored"  # filed as the current version
    HISTORY = "history"  # filed as an older version: a newer one is already current
    DUPLICATE = "duplicate"  # same id, same content: already filed (redelivery, resend)
    CONFLICT = "conflict"  # same id (or same set and version), different content
    WITHDRAWN = "withdrawn"  # a deletion request marked the document withdrawn
    REFUSED = "refused"  # deletion requested by an organisation that is not the author's
    ORPHAN = "orphan"  # deletion request naming no filed document


class Placement(enum.StrEnum):
    CURRENT = "current"
    HISTORY = "history"
    CONFLICT = "conflict"


def placement(
    version: int | None,
    replaces: str | None,
    current_id: str | None,
    current_version: int | None,
) -> Placement:
    """Where a new document goes in its set. Without version numbers, only an explicit
    replacement of the current document makes it current: never overwrite on a guess."""
    if current_id is None:
        return Placement.CURRENT
    if version is not None and current_version is not None:
        if version > current_version:
            return Placement.CURRENT
        return Placement.HISTORY if version < current_version else Placement.CONFLICT
    return Placement.CURRENT if replaces == current_id else Placement.HISTORY


def flags(env: Envelope) -> dict[str, bool]:
    """Visibility flags from the confidentiality codes (JDV_J08) or the HL7v2 MetaDMPMSS flags."""
    codes = env.confidentiality_codes

    def on(*names: str) -> bool:
        return any(n in codes or env.flags.get(n) for n in names)

    return {
        "masked": on(MASKED),
        "invisible_patient": on(INVISIBLE_PATIENT),
        "invisible_representatives": on(*INVISIBLE_REPRESENTATIVES),
    }


def creation_date(ts: str | None) -> str | None:
    """YYYY-MM-DD from an HL7 timestamp (20261101093000+0100) or an ISO one."""
    digits = "".join(ch for ch in (ts or "")[:10] if ch.isdigit())
    if len(digits) < 8:
        return None
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"


def organisations(env: Envelope) -> set[str]:
    return {a.organisation.id for a in env.authors if a.organisation and a.organisation.id}


_HL7_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?")


def document_time(ts: str | None) -> datetime | None:
    """The instant of an HL7 timestamp (20261101093000+0100) or an ISO one, in UTC; without a
    zone, UTC. None when there is none or it cannot be read: such a document is never "newer"."""
    if not ts:
        return None
    # The HL7 form first: fromisoformat also reads some HL7 values, wrongly
    # ("20261101101530+0100" as 01 November 2026, 01:53:00+01:00: the hour's "1" taken as the
    # date/time separator). ISO only for what HL7 cannot be: a value with a "T" or a "-"
    # anywhere but in its zone.
    m = _HL7_TS.fullmatch(ts.strip())
    if m is not None:
        y, mo, d, h, mi, sec, zone = m.groups()
        try:
            at = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0),
                          int(sec or 0))  # fmt: skip
            if zone:
                at = datetime.fromisoformat(f"{at.isoformat()}{zone[:3]}:{zone[3:]}")
        except ValueError:
            return None
    elif "T" in ts or "-" in ts:
        try:
            at = datetime.fromisoformat(ts)
        except ValueError:
            return None
    else:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def utc(value: datetime | None) -> datetime | None:
    """A datetime read back from the store, aware: SQLite returns naive values, written in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# Statements of the filing path built once: building one per call (``.values(**row)``,
# ``where(col == value)``) cost more CPU in SQLAlchemy than executing it
# (docs/performance.md); parameters go in at execution.
_SHA256_OF = sa.select(documents.c.sha256).where(
    documents.c.document_id == sa.bindparam("document_id")
)
_SET_FOR_UPDATE = (
    sa.select(document_sets)
    .where(document_sets.c.set_id == sa.bindparam("set_id"))
    .with_for_update()
)
_SETS_FOR_UPDATE = (
    sa.select(document_sets)
    .where(document_sets.c.set_id.in_(sa.bindparam("set_ids", expanding=True)))
    .order_by(document_sets.c.set_id)  # rows are locked in this order: the same in every batch
    .with_for_update()
)
_SET_UPDATE = (
    document_sets.update()
    .where(document_sets.c.set_id == sa.bindparam("b_set_id"))
    .values(
        current_document_id=sa.bindparam("current_document_id"),
        current_version=sa.bindparam("current_version"),
        updated_at=sa.bindparam("updated_at"),
    )
)
_SHA256_OF_MANY = sa.select(documents.c.document_id, documents.c.sha256).where(
    documents.c.document_id.in_(sa.bindparam("ids", expanding=True))
)
_BIRTH_DATE_OF_MANY = sa.select(
    patients.c.ins, patients.c.ins_system, patients.c.birth_date, patients.c.birth_date_time
).where(patients.c.ins.in_(sa.bindparam("ins", expanding=True)))
_SET_BIRTH_DATE = (  # only over an older source: a concurrent batch may have given a newer
    patients.update()
    .where(patients.c.ins == sa.bindparam("b_ins"))
    .where(
        sa.or_(
            patients.c.birth_date_time.is_(None),
            patients.c.birth_date_time < sa.bindparam("birth_date_time"),
        )
    )
    .values(
        birth_date=sa.bindparam("birth_date"),
        birth_date_time=sa.bindparam("birth_date_time"),
        birth_date_document_id=sa.bindparam("birth_date_document_id"),
    )
)
_SET_INS_SYSTEM = (  # a patient recorded without an OID takes the first document's
    patients.update()
    .where(patients.c.ins == sa.bindparam("b_ins"))
    .where(patients.c.ins_system.is_(None))
    .values(ins_system=sa.bindparam("ins_system"))
)
_REPLACED_OF_MANY = sa.select(
    documents.c.document_id, documents.c.set_id, documents.c.patient_ins
).where(documents.c.document_id.in_(sa.bindparam("ids", expanding=True)))
_REPLACED_OF = sa.select(documents.c.set_id, documents.c.patient_ins).where(
    documents.c.document_id == sa.bindparam("document_id")
)
_INHERITED = ("masked", "invisible_patient", "invisible_representatives")
_FLAGS_OF = sa.select(
    documents.c.masked,
    documents.c.invisible_patient,
    documents.c.invisible_representatives,
    documents.c.released_at,
).where(documents.c.document_id == sa.bindparam("document_id"))


@dataclass(frozen=True, slots=True)
class Demographics:
    """A patient's birth date and the creation time of the document that gave it (None: a
    document without one, an operator, or a row from before migration 0005)."""

    birth_date: str | None
    given_at: datetime | None = None
    document_id: str | None = None


@dataclass
class Head:
    """A set as the batch sees it: its row as locked, or as the batch's filings left it.
    ``held``: inserted by the batch's next flush; ``changed``: its row to update then."""

    patient_ins: str
    current_document_id: str
    current_version: int | None
    updated_at: datetime | None = None
    held: bool = False
    changed: bool = False

    @classmethod
    def of(cls, row: sa.Row) -> Head:
        """The head of a set row read from the database (locked)."""
        return cls(row.patient_ins, row.current_document_id, row.current_version)


def _lock_keys(env: Envelope, replaced: dict[str, dict]) -> tuple[str, ...]:
    """The sets a new document may file into, locked when its batch begins: its own (its
    setId, else its id) and, for a replacement naming no set, the set of the replaced document
    when that is already filed. None for a withdrawal (it locks its target's row)."""
    if env.action == "delete":
        return ()
    if env.set_id:
        return (env.set_id,)
    row = replaced.get(env.replaces) if env.replaces else None
    if row is None:
        return (env.document_id,)
    return (env.document_id, row["set_id"] or env.replaces)


class PatientRaced(Exception):
    """A patient row changed between the batch's read and its write: filed again (store)."""


def _refines(birth: str, known: str) -> bool:
    """Whether ``birth`` only makes ``known`` more precise (20080115 within 2008): the known
    date's minority was a guess over its range, the new one settles it, it is no conflict."""
    new, old = birth_range(birth), birth_range(known)
    return new is not None and old is not None and old[0] <= new[0] and new[1] <= old[1]


@dataclass
class Batch:
    """What the filings of one transaction share, so that a batch of new documents costs about
    ten statements whatever its size, rather than nine per document (docs/performance.md,
    "Filing statements folded" and "Sets locked when a batch begins").

    - ``filed``: sha256 of the batch's document ids already filed, read in one statement when
      the batch begins and kept up to date as it files (a redelivered twin in the same batch
      is a DUPLICATE); ``patients``: their demographics as stored, read likewise;
      ``replaced``: the set and patient of the filed documents its replacements name. All are
      only a first look: what a concurrent filer commits meanwhile is still caught under the
      set lock or by the unique keys (IntegrityError: the batch is filed again, one savepoint
      per document).
    - rows that nothing in filing reads back before the commit (authors, the outbox, audit
      events) are held and inserted together by ``flush``, one statement per table. A
      withdrawal reads authors: it flushes first.
    - patient rows (a new patient; a birth date given by a newer current document) are
      written by ``finish``, after every set lock of the batch, in INS order: a batch never
      holds a patient row while it waits for a set, so two batches filing for one patient
      cannot deadlock on the patient row and a set.
    - the sets of its documents are locked when the batch begins, in one statement, in set
      id order (``sets``), before ``filed`` is read: what ``filed`` says of those sets'
      documents holds until the commit. A replacement naming no set locks the set of the
      filed document it replaces there too. Documents are filed in arrival order (a
      replacement after what it replaces, as one by one); document rows and new set rows are
      held (``documents``, ``Head.held``), and the batch reads its own filings from what it
      holds (a later version in the same batch supersedes a held row in place); set rows
      changed are updated by ``flush``, one statement for all. A set known only once filing
      (a replaced document committed meanwhile by another filer) is locked then.
    - ``reasons``: why a document was refused (CONFLICT, REFUSED, ORPHAN), by document id,
      for the consumer to park it with that reason.
    """

    sets: dict[str, Head | None] = field(default_factory=dict)  # None: no such set (yet)
    documents: dict[str, dict] = field(default_factory=dict)
    filed: dict[str, str] = field(default_factory=dict)
    patients: dict[str, Demographics] = field(default_factory=dict)
    replaced: dict[str, dict] = field(default_factory=dict)
    authors: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    audit: list[dict] = field(default_factory=list)
    new_patients: dict[str, dict] = field(default_factory=dict)
    births: dict[str, Demographics] = field(default_factory=dict)  # INS -> to write
    ins_systems: dict[str, str | None] = field(default_factory=dict)  # INS -> OID recorded
    named_systems: dict[str, str] = field(default_factory=dict)  # INS -> OID to record
    reasons: dict[str, str] = field(default_factory=dict)

    @classmethod
    def begin(cls, conn: sa.Connection, messages: Sequence[DocumentMessage]) -> Batch:
        envs = [m.envelope for m in messages]
        ids = sorted({e.document_id for e in envs})
        ins = sorted({e.patient.ins for e in envs if e.patient.ins})
        named = sorted({e.replaces for e in envs if e.replaces and e.action != "delete"})
        batch = cls()
        for chunk in chunks(named):
            for row in conn.execute(_REPLACED_OF_MANY, {"ids": chunk}).mappings():
                batch.replaced[row["document_id"]] = dict(row)
        set_ids = sorted({k for e in envs for k in _lock_keys(e, batch.replaced)})
        batch.sets = dict.fromkeys(set_ids)
        for chunk in chunks(set_ids):
            for row in conn.execute(_SETS_FOR_UPDATE, {"set_ids": chunk}):
                batch.sets[row.set_id] = Head.of(row)
        for chunk in chunks(ids):
            batch.filed.update(conn.execute(_SHA256_OF_MANY, {"ids": chunk}).all())
        for chunk in chunks(ins):
            for row in conn.execute(_BIRTH_DATE_OF_MANY, {"ins": chunk}):
                batch.patients[row.ins] = Demographics(row.birth_date, utc(row.birth_date_time))
                batch.ins_systems[row.ins] = row.ins_system
        return batch

    def flush(self, conn: sa.Connection) -> None:
        new_sets = [
            dict(set_id=k, patient_ins=h.patient_ins, current_document_id=h.current_document_id,
                 current_version=h.current_version, updated_at=h.updated_at)
            for k, h in self.sets.items() if h is not None and h.held
        ]  # fmt: skip
        changed = [
            {"b_set_id": k, "current_document_id": h.current_document_id,
             "current_version": h.current_version, "updated_at": h.updated_at}
            for k, h in self.sets.items() if h is not None and h.changed and not h.held
        ]  # fmt: skip
        if new_sets:
            conn.execute(document_sets.insert(), new_sets)
        if changed:
            conn.execute(_SET_UPDATE, changed)
        for head in self.sets.values():
            if head is not None:
                head.held = head.changed = False
        if self.documents:
            conn.execute(documents.insert(), list(self.documents.values()))
            self.documents.clear()
        for table, rows in (
            (document_authors, self.authors),
            (notifications, self.notifications),
            (audit_events, self.audit),
        ):
            if rows:
                conn.execute(table.insert(), rows)
                rows.clear()

    def finish(self, conn: sa.Connection) -> None:
        """What is held, then the patient rows, in INS order."""
        self.flush(conn)
        if self.new_patients:
            conn.execute(
                patients.insert(), [self.new_patients[k] for k in sorted(self.new_patients)]
            )
            self.new_patients.clear()
        if self.births:
            conn.execute(
                _SET_BIRTH_DATE,
                [
                    {"b_ins": k, "birth_date": d.birth_date, "birth_date_time": d.given_at,
                     "birth_date_document_id": d.document_id}
                    for k, d in sorted(self.births.items())
                ],
            )  # fmt: skip
            self.births.clear()
        for ins, system in sorted(self.named_systems.items()):
            # One at a time, to see each row taken: another filing may have named the OID
            # since this batch read it (PostgreSQL re-reads the row once its lock is free).
            if conn.execute(_SET_INS_SYSTEM, {"b_ins": ins, "ins_system": system}).rowcount != 1:
                raise PatientRaced("another filing named the patient's INS OID meanwhile")
        self.named_systems.clear()

    def patient(self, env: Envelope, now: datetime, current: bool) -> None:
        """The patient of a filed document: a row to insert, and its birth date when the
        document becomes ``current`` and is newer than the one that gave the known birth date
        (an outdated or older version never rewrites it). A birth date that would flip the
        patient's minority is not taken: it would hand the record to (or take it from) the
        legal representatives on one document's word; the known one stays, the conflict goes
        into the patient's audit trail for an operator to settle
        (``RecordStore.set_birth_date``)."""
        ins = env.patient.ins
        if not ins:
            return
        if ins not in self.patients and ins not in self.new_patients:
            self.new_patients[ins] = dict(
                ins=ins, ins_system=env.patient.ins_system, birth_date=None,
                birth_date_time=None, birth_date_document_id=None, created_at=now,
            )  # fmt: skip
        birth = (env.patient.birth_date or "")[:8] or None
        if not current or not birth:
            return
        given_at = document_time(env.creation_time)
        known = self._demographics(ins)
        if known.given_at is not None and (given_at is None or given_at <= known.given_at):
            return  # not provably newer than what gave the known birth date
        sender = audit.Actor("sender", env.sender)
        # The reasons name no date: the trail is shown to the patient and its representatives,
        # and a birth date is identifying data that has no business in an access log.
        if birth_range(birth) is None:
            self.record(
                sender, audit.Action.BIRTH_DATE, "conflict", ins, env.document_id,
                "the document's birth date cannot be read; the known one kept",
            )  # fmt: skip
            return
        if known.birth_date and birth != known.birth_date:
            today = french_date(now)
            before = PatientFacts(ins, known.birth_date).minority(today)
            after = PatientFacts(ins, birth).minority(today)
            if before is not None and after != before and not _refines(birth, known.birth_date):
                self.record(
                    sender, audit.Action.BIRTH_DATE, "conflict", ins, env.document_id,
                    f"the document's birth date would make the patient "
                    f"{'an adult' if before else 'a minor'}; the known one kept",
                )  # fmt: skip
                return
            self.record(
                sender, audit.Action.BIRTH_DATE, "changed", ins, env.document_id,
                "birth date changed",
            )  # fmt: skip
        given = Demographics(birth, given_at, env.document_id)
        if ins in self.new_patients:
            self.new_patients[ins].update(
                birth_date=birth, birth_date_time=given_at, birth_date_document_id=env.document_id
            )
        else:
            self.births[ins] = given

    def _demographics(self, ins: str) -> Demographics:
        """The patient's demographics as this batch leaves them so far."""
        if ins in self.new_patients:
            row = self.new_patients[ins]
            return Demographics(
                row["birth_date"], row["birth_date_time"], row["birth_date_document_id"]
            )
        return self.births.get(ins) or self.patients.get(ins) or Demographics(None)

    def record(
        self,
        actor: audit.Actor,
        action: audit.Action,
        outcome: str,
        patient_ins: str | None,
        document_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        event = audit.Event(actor, action, outcome, patient_ins, document_id, reason)
        self.audit.append(audit.row(event))

    def notify(self, ins: str, document_id: str, event: str) -> None:
        self.notifications.append(_notification(ins, document_id, event))

    def may_notify(self, ins: str, document_id: str, visibility: dict, now: datetime) -> bool:
        """Whether the patient's account is told of a document filed with ``visibility``:
        only one its holders may see (``access.notify_holders``), with the birth date as
        this batch leaves it."""
        doc = DocumentFacts(document_id, ins, **visibility)
        patient = PatientFacts(ins, self._demographics(ins).birth_date)
        return notify_holders(patient, doc, french_date(now))

    def ins_system_refusal(self, env: Envelope) -> str | None:
        """Why a document may not file into the record of its INS: the INS's OID differs from
        the one the patient is recorded under. The record is keyed on the INS digits, and
        the same digits under the test OID (1.2.250.1.213.1.4.10) and the INS-NIR's (.8) are
        two people: a test document must never land in a real patient's record. A patient
        recorded without an OID (opened by a grant, or before any document) takes the
        first document's (``finish``)."""
        ins, system = env.patient.ins, env.patient.ins_system
        if ins in self.new_patients:
            known = self.new_patients[ins]["ins_system"]
        elif ins in self.ins_systems:
            known = self.ins_systems[ins]
        else:
            return None  # no such patient yet: recorded under this document's (``patient``)
        if known and system != known:
            return (
                f"INS under OID {system or '(none)'}, the patient is recorded under {known}: "
                "the same digits under another OID are another person (test INS vs real?)"
            )
        if not known and system:
            if ins in self.new_patients:
                self.new_patients[ins]["ins_system"] = system
            else:
                self.ins_systems[ins] = self.named_systems[ins] = system
        return None


def _already_filed(
    conn: sa.Connection, env: Envelope, sender: audit.Actor, batch: Batch, look: bool
) -> Filing | None:
    """DUPLICATE or CONFLICT when this document id is already filed, else None. ``look``:
    ask the database, not only what the batch read when it began."""
    existing = batch.filed.get(env.document_id)
    if existing is None and look:
        existing = conn.execute(_SHA256_OF, {"document_id": env.document_id}).scalar_one_or_none()
    if existing is None:
        return None
    if existing == env.sha256:
        return Filing.DUPLICATE
    return _refuse(
        env,
        sender,
        Filing.CONFLICT,
        "a different document with the same id is already filed",
        batch,
    )


def file_message(
    conn: sa.Connection,
    message: DocumentMessage,
    signature_status: str,
    batch: Batch | None = None,
) -> Filing:
    """File one message. Inside a ``batch``, its held rows are written by the caller's
    ``batch.finish``; without one, before returning."""
    if batch is not None:
        return _file(conn, message, signature_status, batch)
    alone = Batch.begin(conn, [message])
    filing = _file(conn, message, signature_status, alone)
    alone.finish(conn)
    return filing


def _file(
    conn: sa.Connection, message: DocumentMessage, signature_status: str, batch: Batch
) -> Filing:
    env = message.envelope
    sender = audit.Actor("sender", env.sender)
    if env.action == "delete":
        batch.flush(conn)  # a withdrawal reads the authors of what it withdraws
        return _withdraw(conn, env, sender, batch)
    if (filed := _already_filed(conn, env, sender, batch, look=False)) is not None:
        return filed
    if (refusal := batch.ins_system_refusal(env)) is not None:
        return _refuse(env, sender, Filing.CONFLICT, refusal, batch)
    now = datetime.now(UTC)
    ins = env.patient.ins
    set_id = env.set_id
    if env.replaces:
        replaced = (
            batch.documents.get(env.replaces)
            or batch.replaced.get(env.replaces)
            or conn.execute(_REPLACED_OF, {"document_id": env.replaces}).mappings().first()
        )
        if replaced is not None:
            if replaced["patient_ins"] != ins:
                return _refuse(env, sender, Filing.CONFLICT, "replaces another patient's", batch)
            replaced_set = replaced["set_id"] or env.replaces  # rows from before 0002: no set
            if set_id and set_id != replaced_set:
                # Filed into its own set, it would leave the replaced document current too.
                reason = f"replaces a document of another set ({replaced_set})"
                return _refuse(env, sender, Filing.CONFLICT, reason, batch)
            set_id = replaced_set
    set_id = set_id or env.document_id
    if set_id in batch.sets:  # locked when the batch began, or filed into by the batch
        head = batch.sets[set_id]
    else:
        row = conn.execute(_SET_FOR_UPDATE, {"set_id": set_id}).first()
        head = row and Head.of(row)
        batch.sets[set_id] = head
        # Under the set lock, look again: a concurrent filer of this very document may have
        # committed while we waited (PostgreSQL READ COMMITTED shows its row now).
        if head is not None and (filed := _already_filed(conn, env, sender, batch, True)):
            return filed
    if head is not None and head.patient_ins != (ins or ""):
        return _refuse(env, sender, Filing.CONFLICT, "set belongs to another patient", batch)
    place = placement(
        env.version,
        env.replaces,
        head.current_document_id if head else None,
        head.current_version if head else None,
    )
    if place is Placement.CONFLICT:
        return _refuse(
            env, sender, Filing.CONFLICT, "version already filed under another id", batch
        )
    visibility = flags(env)
    if head is not None:
        # What hides the document holds for the whole set, whatever a new version says: the
        # patient's mask (records/store.py set_masked masks every version), a document not
        # yet announced to the patient (a corrected report is not an announcement), one
        # hidden from the legal representatives. A version filed into such a set, newer or
        # older, takes the flags of the set's current version.
        if place is Placement.CURRENT:
            inherited = _supersede(conn, head.current_document_id, env.document_id, batch)
        else:
            inherited = _flags_of(conn, head.current_document_id, batch)
        for name in _INHERITED:
            visibility[name] = visibility[name] or inherited[name]
    batch.patient(env, now, current=place is Placement.CURRENT)
    batch.documents[env.document_id] = dict(
        document_id=env.document_id,
        set_id=set_id,
        version=env.version,
        patient_ins=ins,
        patient_ins_system=env.patient.ins_system,
        type_code=env.type_code.code if env.type_code else None,
        source_kind=env.source_kind,
        sender=env.sender,
        content_type=env.content_type,
        sha256=env.sha256,
        size=env.size,
        creation_time=env.creation_time,
        received_at=env.received_at,
        filed_at=now,
        trace_id=env.trace_id,
        envelope=env.to_json(),
        payload=message.payload,
        status="current" if place is Placement.CURRENT else "superseded",
        superseded_by=None if place is Placement.CURRENT else head.current_document_id,
        creation_date=creation_date(env.creation_time),
        facility_id=env.facility.id if env.facility else None,
        signature_status=signature_status,
        **visibility,
    )
    batch.filed[env.document_id] = env.sha256
    batch.authors += [
        {
            "document_id": env.document_id,
            "author_id": a.id,
            "organisation_id": a.organisation.id if a.organisation else None,
        }
        for a in env.authors
    ]
    if place is Placement.CURRENT:
        if head is None:
            head = batch.sets[set_id] = Head(ins or "", env.document_id, env.version, held=True)
        head.current_document_id, head.current_version = env.document_id, env.version
        head.updated_at, head.changed = now, True
    filing = Filing.STORED if place is Placement.CURRENT else Filing.HISTORY
    if filing is Filing.STORED and ins and batch.may_notify(ins, env.document_id, visibility, now):
        batch.notify(ins, env.document_id, NOTIFY_FILED)
    batch.record(sender, audit.Action.FILE, filing, ins, env.document_id)
    return filing


def _supersede(conn: sa.Connection, current_id: str, new_id: str, batch: Batch) -> dict[str, bool]:
    """Mark the set's current document superseded by ``new_id``; the flags a new version of
    the set inherits from it (``_flags_of``). The batch's own held row is changed in place; a
    filed one, in the database."""
    inherited = _flags_of(conn, current_id, batch)
    held = batch.documents.get(current_id)
    if held is not None:
        if held["status"] == "current":
            held["status"], held["superseded_by"] = "superseded", new_id
        return inherited
    conn.execute(
        documents.update()
        .where(documents.c.document_id == current_id)
        .where(documents.c.status == "current")
        .values(status="superseded", superseded_by=new_id)
    )
    return inherited


def _flags_of(conn: sa.Connection, document_id: str, batch: Batch) -> dict[str, bool]:
    """The flags a version of ``document_id``'s set inherits from it: its mask, its
    invisibility to the patient while it is not released (announced), its invisibility to
    the legal representatives."""
    row = batch.documents.get(document_id)
    if row is None:
        found = conn.execute(_FLAGS_OF, {"document_id": document_id}).mappings().first()
        row = dict(found) if found is not None else {}
    return {
        "masked": bool(row.get("masked")),
        "invisible_patient": bool(row.get("invisible_patient")) and row.get("released_at") is None,
        "invisible_representatives": bool(row.get("invisible_representatives")),
    }


def _notification(ins: str, document_id: str, event: str) -> dict:
    return dict(patient_ins=ins, document_id=document_id, event=event, created_at=datetime.now(UTC))


def queue_notification(conn: sa.Connection, ins: str, document_id: str, event: str) -> None:
    conn.execute(notifications.insert(), _notification(ins, document_id, event))


def _withdraw(conn: sa.Connection, env: Envelope, sender: audit.Actor, batch: Batch) -> Filing:
    # The document carried, when it is filed: a deletion carries the version to delete (the
    # volet's deletion carries the latest one, whose relatedDocument names the version it
    # replaced; withdrawing that one would leave the current version standing). Else the
    # document it names as replaced, else the current version of its set.
    target_id = conn.execute(
        sa.select(documents.c.document_id).where(documents.c.document_id == env.document_id)
    ).scalar_one_or_none()
    if target_id is None:
        target_id = env.replaces
    if target_id is None and env.set_id:
        target_id = conn.execute(
            sa.select(document_sets.c.current_document_id).where(
                document_sets.c.set_id == env.set_id
            )
        ).scalar_one_or_none()
    target = (
        conn.execute(
            sa.select(
                documents.c.document_id,
                documents.c.patient_ins,
                documents.c.status,
                documents.c.sender,
                documents.c.envelope,
            )
            .where(documents.c.document_id == target_id)
            .with_for_update()
        ).first()
        if target_id
        else None
    )
    if target is None:
        return _refuse(env, sender, Filing.ORPHAN, "withdrawal names no filed document", batch)
    if target.status == "withdrawn":
        return Filing.DUPLICATE
    refusal = _withdrawal_refusal(conn, target, env)
    if refusal is not None:
        batch.record(
            sender,
            audit.Action.WITHDRAW,
            Filing.REFUSED,
            target.patient_ins,
            target.document_id,
            refusal,
        )
        batch.reasons[env.document_id] = refusal
        return Filing.REFUSED
    conn.execute(
        documents.update()
        .where(documents.c.document_id == target.document_id)
        .values(status="withdrawn", withdrawn_at=datetime.now(UTC))
    )
    batch.record(
        sender,
        audit.Action.WITHDRAW,
        Filing.WITHDRAWN,
        target.patient_ins,
        target.document_id,
    )
    return Filing.WITHDRAWN


def _withdrawal_refusal(conn: sa.Connection, target: sa.Row, env: Envelope) -> str | None:
    """Why ``env`` may not withdraw ``target``; None when it may.

    Rights come from what was recorded when the document was filed, never from what the
    request says of itself alone: its author organisations and custodian are the sender's to
    write, so a request naming another establishment would otherwise withdraw that
    establishment's document. The request must come from the sender that filed the document
    (``sender`` is set by the gateway from the connection: the authenticated sender, else the
    peer), and name the custodian the document named when filed (the organisation that keeps
    it); a document filed without a custodian needs one of its filed authors' organisations.
    """
    if target.patient_ins != env.patient.ins:
        return "withdrawal of another patient's document"
    if env.sender != target.sender:
        return "only the sender that filed the document withdraws it"
    filed_custodian = (json.loads(target.envelope).get("custodian") or {}).get("id")
    if filed_custodian:
        if not env.custodian or env.custodian.id != filed_custodian:
            return "the withdrawal does not name the document's custodian"
        return None
    author_orgs = set(
        conn.execute(
            sa.select(document_authors.c.organisation_id).where(
                document_authors.c.document_id == target.document_id
            )
        ).scalars()
    ) - {None}
    if not organisations(env) & author_orgs:
        return "only the author's organisation withdraws a document"
    return None


def _refuse(
    env: Envelope, sender: audit.Actor, filing: Filing, reason: str, batch: Batch
) -> Filing:
    action = audit.Action.WITHDRAW if env.action == "delete" else audit.Action.FILE
    batch.record(sender, action, filing, env.patient.ins, env.document_id, reason)
    batch.reasons[env.document_id] = reason
    return filing
