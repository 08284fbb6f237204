"""RecordStore: documents by patient, in SQLite (embedded default) or PostgreSQL.

Filing is idempotent on the document id: the same document delivered twice is stored once
(the version rules are in records/filing.py). Every change commits together with its audit
event. Database failures become StoreUnavailable, which the consumer answers with a requeue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from gateway.broker.message import DocumentMessage
from gateway.errors import StoreUnavailable
from gateway.records import audit
from gateway.records.access import PatientFacts
from gateway.records.filing import (
    NOTIFY_RELEASED,
    Batch,
    Filing,
    PatientRaced,
    file_message,
    queue_notification,
    utc,
)
from gateway.records.in_lists import chunks
from gateway.records.schema import (
    access_decisions,
    audit_events,
    document_authors,
    document_sets,
    documents,
    legal_representatives,
    notifications,
    patients,
)

__all__ = ["DocumentQuery", "Filing", "RecordStore", "create_engine", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"
WRITER = "passerelle_writer"  # execution option: this connection writes (SQLite BEGIN IMMEDIATE)
FILING_ATTEMPTS = 3  # concurrent filers of one set: the loser of a unique-key race retries
AUDIT_PAGE = 100  # audit events per page by default (GET /patients/{ins}/audit)


def engine_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the usual postgresql:// form."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def create_engine(url: str) -> sa.Engine:
    url = engine_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # We issue BEGIN ourselves (below), so pysqlite must not.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:
            # Writers take the write lock up front: a read-then-write transaction (filing a
            # version) cannot then fail half-way on another writer's commit. Readers do not
            # queue behind writers (WAL).
            immediate = conn.get_execution_options().get(WRITER, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def migrate(engine: sa.Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass(frozen=True, slots=True)
class DocumentQuery:
    """Filters of a record listing; None means no filter. Dates are YYYY-MM-DD, inclusive."""

    type_code: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    author_id: str | None = None
    facility_id: str | None = None
    include_history: bool = False


def _file_in_savepoint(
    conn: sa.Connection, message: DocumentMessage, signature_status: str, reasons: dict[str, str]
) -> Filing | Exception:
    for _ in range(FILING_ATTEMPTS):
        try:
            with conn.begin_nested():
                alone = Batch.begin(conn, [message])
                filing = file_message(conn, message, signature_status, alone)
                alone.finish(conn)
                reasons.update(alone.reasons)
                return filing
        except (IntegrityError, PatientRaced):
            # Another consumer filed the same id or set, or named the patient's INS OID,
            # between our reads and writes (our write waited for its commit): the next
            # attempt sees its rows and decides again.
            continue
        except OperationalError:
            raise  # the store, not this document: the batch fails as a whole
        except Exception as exc:
            return exc
    return StoreUnavailable("record store: filing kept racing; retry")


def chain_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The versions of one set, newest first, in the order of the replacement chain: a
    version is older than the one that superseded it (``superseded_by``), and the current
    version (superseded by none) is the newest. Versions superseded by the same one (a late
    version filed as history, pointing at the then current one) come by version number, then
    filing time, then id. Decided here, not in SQL: version numbers may be NULL, and SQLite
    and PostgreSQL sort NULL at opposite ends, which showed a superseded version as current
    on one of them."""
    by_id = {r["document_id"]: r for r in rows}

    def hops(row: dict[str, Any]) -> int:
        seen, n = {row["document_id"]}, 0
        while (nxt := row.get("superseded_by")) in by_id and nxt not in seen:
            seen.add(nxt)
            row, n = by_id[nxt], n + 1
        return n

    def key(row: dict[str, Any]) -> tuple:
        version = row.get("version")
        filed = utc(row.get("filed_at"))
        return (
            hops(row),
            version is None,
            -(version or 0),
            -(filed.timestamp() if filed else 0.0),
            row["document_id"],
        )

    return sorted(rows, key=key)


class RecordStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, run_migrations: bool = True) -> RecordStore:
        engine = create_engine(url)
        try:
            if run_migrations:
                migrate(engine)
        except OperationalError as exc:
            engine.dispose()
            raise StoreUnavailable(f"cannot open the record store: {exc.orig!r}") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"record store unavailable: {type(exc.orig).__name__}") from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect().execution_options(**{WRITER: True}) as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"record store unavailable: {type(exc.orig).__name__}") from None

    # -- filing ------------------------------------------------------------------------------

    def file(self, message: DocumentMessage, signature_status: str = "unchecked") -> Filing:
        (filing,) = self.file_many([(message, signature_status)])
        if isinstance(filing, Exception):
            raise filing
        return filing

    def file_many(
        self,
        items: Sequence[tuple[DocumentMessage, str]],
        reasons: dict[str, str] | None = None,
    ) -> list[Filing | Exception]:
        """File (message, signature status) pairs in one transaction and one commit. A
        document that fails is rolled back alone and its exception is its result; the others
        commit. StoreUnavailable when the store fails the whole batch. ``reasons``, when
        given, receives why each refused document (CONFLICT, REFUSED, ORPHAN) was refused, by
        document id.

        Documents are filed in arrival order, as if filed one by one: a replacement after the
        document it replaces (in any other order both could end up current). The batch is
        first filed under one savepoint; only if one of its documents raises is that rolled
        back and the batch filed again with a savepoint per document (two more statements
        each, needless when nothing fails, which is nearly always: refusals are results, not
        exceptions). The batch locks its sets when it begins, in set id order (filing.Batch),
        so that two consumers filing overlapping batches take the set locks in the same order
        instead of deadlocking, whatever order their documents are filed in."""
        if not items:
            return []
        results: list[Filing | Exception] = []
        refused: dict[str, str] = {}
        with self._writing() as conn:
            try:
                with conn.begin_nested():
                    batch = Batch.begin(conn, [m for m, _ in items])
                    results = [file_message(conn, m, status, batch) for m, status in items]
                    batch.finish(conn)
                    refused = batch.reasons
            except OperationalError:
                raise  # the store, not a document: the batch fails as a whole
            except Exception:
                refused = {}
                results = [_file_in_savepoint(conn, m, status, refused) for m, status in items]
        if reasons is not None:
            reasons.update(refused)
        return results

    # -- reads -------------------------------------------------------------------------------

    def documents_for_patient(self, ins: str) -> list[dict[str, Any]]:
        """Every filed row of a patient (all versions), without payload: operators and tests."""
        cols = [c for c in documents.c if c.name not in ("payload", "envelope")]
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(*cols)
                .where(documents.c.patient_ins == ins)
                .order_by(documents.c.filed_at)
            ).mappings()
            return [dict(r) for r in rows]

    def query(self, ins: str, q: DocumentQuery) -> list[dict[str, Any]]:
        """A patient's documents matching ``q`` (no payload), newest first, with author ids."""
        cols = [c for c in documents.c if c.name != "payload"]
        stmt = sa.select(*cols).where(documents.c.patient_ins == ins)
        if not q.include_history:
            stmt = stmt.where(documents.c.status == "current")
        if q.type_code:
            stmt = stmt.where(documents.c.type_code == q.type_code)
        if q.date_from:
            stmt = stmt.where(documents.c.creation_date >= q.date_from)
        if q.date_to:
            stmt = stmt.where(documents.c.creation_date <= q.date_to)
        if q.facility_id:
            stmt = stmt.where(documents.c.facility_id == q.facility_id)
        if q.author_id:
            stmt = stmt.where(
                sa.exists().where(
                    document_authors.c.document_id == documents.c.document_id,
                    document_authors.c.author_id == q.author_id,
                )
            )
        stmt = stmt.order_by(documents.c.creation_date.desc(), documents.c.filed_at.desc())
        with self._reading() as conn:
            rows = [dict(r) for r in conn.execute(stmt).mappings()]
            authors = self._authors(conn, [r["document_id"] for r in rows])
        for r in rows:
            r["author_ids"] = authors.get(r["document_id"], frozenset())
        return rows

    def document(self, document_id: str) -> dict[str, Any] | None:
        """One document row with payload and author ids, or None."""
        with self._reading() as conn:
            row = (
                conn.execute(sa.select(documents).where(documents.c.document_id == document_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            out = dict(row)
            out["author_ids"] = self._authors(conn, [document_id]).get(document_id, frozenset())
            return out

    def versions(self, set_id: str) -> list[dict[str, Any]]:
        """Every version of a set, newest first (``chain_order``), with what the access policy
        needs and the version that superseded each."""
        cols = (
            documents.c.document_id,
            documents.c.version,
            documents.c.status,
            documents.c.superseded_by,
            documents.c.filed_at,
            documents.c.patient_ins,
            documents.c.masked,
            documents.c.invisible_patient,
            documents.c.invisible_representatives,
            documents.c.released_at,
        )
        with self._reading() as conn:
            rows = [
                dict(r)
                for r in conn.execute(
                    sa.select(*cols).where(documents.c.set_id == set_id)
                ).mappings()
            ]
            authors = self._authors(conn, [r["document_id"] for r in rows])
        for r in rows:
            r["author_ids"] = authors.get(r["document_id"], frozenset())
        return chain_order(rows)

    @staticmethod
    def _authors(conn: sa.Connection, ids: list[str]) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for chunk in chunks(ids):
            rows = conn.execute(
                sa.select(document_authors.c.document_id, document_authors.c.author_id).where(
                    document_authors.c.document_id.in_(chunk)
                )
            )
            for doc_id, author_id in rows:
                if author_id:
                    out.setdefault(doc_id, set()).add(author_id)
        return {k: frozenset(v) for k, v in out.items()}

    def patient(self, ins: str) -> PatientFacts:
        """What the access policy needs to know about a patient (defaults when unknown)."""
        with self._reading() as conn:
            row = conn.execute(sa.select(patients).where(patients.c.ins == ins)).first()
            reps = conn.execute(
                sa.select(legal_representatives.c.representative_id).where(
                    legal_representatives.c.patient_ins == ins
                )
            ).scalars()
            decisions = conn.execute(
                sa.select(access_decisions.c.professional_id, access_decisions.c.decision).where(
                    access_decisions.c.patient_ins == ins
                )
            ).all()
            return PatientFacts(
                ins=ins,
                birth_date=row.birth_date if row else None,
                attending_id=row.attending_id if row else None,
                representatives=frozenset(reps),
                granted=frozenset(p for p, d in decisions if d == "grant"),
                opposed=frozenset(p for p, d in decisions if d == "oppose"),
            )

    def audit_page(
        self,
        ins: str,
        since: datetime | None = None,
        before: int | None = None,
        limit: int = AUDIT_PAGE,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of a patient's audit events, newest first: those with an id below
        ``before`` (from the newest when None) and at or after ``since``, at most ``limit``;
        with the ``before`` of the next page, None when this one is the last."""
        stmt = self._audit_events(ins, since)
        if before is not None:
            stmt = stmt.where(audit_events.c.id < before)
        events = self._audit_rows(stmt.limit(limit + 1))
        if len(events) > limit:
            events = events[:limit]
            return events, events[-1]["id"]
        return events, None

    def audit_trail(self, ins: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Every audit event of a patient, newest first: operators and tests."""
        return self._audit_rows(self._audit_events(ins, since))

    @staticmethod
    def _audit_events(ins: str, since: datetime | None) -> sa.Select:
        stmt = sa.select(audit_events).where(audit_events.c.patient_ins == ins)
        if since is not None:
            stmt = stmt.where(audit_events.c.at >= since)
        return stmt.order_by(audit_events.c.id.desc())

    def _audit_rows(self, stmt: sa.Select) -> list[dict[str, Any]]:
        """Rows of ``stmt``, ``at`` aware: SQLite gives back naive datetimes, written in UTC."""
        with self._reading() as conn:
            events = [dict(r) for r in conn.execute(stmt).mappings()]
        for e in events:
            e["at"] = utc(e["at"])
        return events

    def visibility(self, document_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What the access policy needs of each filed document among ``document_ids``."""
        cols = (
            documents.c.document_id,
            documents.c.patient_ins,
            documents.c.masked,
            documents.c.invisible_patient,
            documents.c.invisible_representatives,
            documents.c.released_at,
        )
        out: dict[str, dict[str, Any]] = {}
        with self._reading() as conn:
            for chunk in chunks(sorted(set(document_ids))):
                rows = conn.execute(sa.select(*cols).where(documents.c.document_id.in_(chunk)))
                out.update((r["document_id"], dict(r)) for r in rows.mappings())
        return out

    # -- changes, each with its audit event ----------------------------------------------------

    def audit(self, event: audit.Event) -> None:
        """An event with no change attached: reads and denials."""
        with self._writing() as conn:
            audit.write(conn, event)

    def set_masked(self, document_id: str, masked: bool, event: audit.Event) -> None:
        """Mask (or unmask) every version of the document's set: the patient hides a document,
        not one of its versions. The set row is locked first, as filing does, so that a version
        filed meanwhile is either masked here or files after this and takes the mask from the
        set's current version (records/filing.py)."""
        with self._writing() as conn:
            set_id = conn.execute(
                sa.select(documents.c.set_id).where(documents.c.document_id == document_id)
            ).scalar()
            key = set_id or document_id  # rows from before 0002 have no set id
            conn.execute(
                sa.select(document_sets.c.set_id)
                .where(document_sets.c.set_id == key)
                .with_for_update()
            ).first()
            same_set = documents.c.document_id == document_id
            if set_id:
                same_set = sa.or_(same_set, documents.c.set_id == set_id)
            conn.execute(documents.update().where(same_set).values(masked=masked))
            audit.write(conn, event)

    def release(self, document_id: str, ins: str, event: audit.Event, notify: bool = True) -> bool:
        """Make an invisible-to-patient document visible; False when it already was.
        ``notify``: whether the patient's account is told (not when its holders may still not
        see the document: a minor's, hidden from the representatives; ``access.notify_holders``)."""
        with self._writing() as conn:
            done = conn.execute(
                documents.update()
                .where(documents.c.document_id == document_id)
                .where(documents.c.released_at.is_(None))
                .values(released_at=datetime.now(UTC))
            ).rowcount
            if done and notify:
                queue_notification(conn, ins, document_id, NOTIFY_RELEASED)
            audit.write(conn, event)
            return bool(done)

    def set_access(
        self, ins: str, professional_id: str, decision: str | None, event: audit.Event
    ) -> None:
        """Record a patient's "grant" or "oppose" for one professional; None revokes either."""
        with self._writing() as conn:
            self._ensure_patient(conn, ins)
            conn.execute(
                access_decisions.delete().where(
                    access_decisions.c.patient_ins == ins,
                    access_decisions.c.professional_id == professional_id,
                )
            )
            if decision is not None:
                conn.execute(
                    access_decisions.insert().values(
                        patient_ins=ins,
                        professional_id=professional_id,
                        decision=decision,
                        decided_at=datetime.now(UTC),
                        decided_by=event.actor.id,
                    )
                )
            audit.write(conn, event)

    def set_attending(self, ins: str, professional_id: str | None, event: audit.Event) -> None:
        with self._writing() as conn:
            self._ensure_patient(conn, ins)
            conn.execute(
                patients.update().where(patients.c.ins == ins).values(attending_id=professional_id)
            )
            audit.write(conn, event)

    def set_representative(
        self, ins: str, representative_id: str, present: bool, event: audit.Event
    ) -> None:
        with self._writing() as conn:
            self._ensure_patient(conn, ins)
            conn.execute(
                legal_representatives.delete().where(
                    legal_representatives.c.patient_ins == ins,
                    legal_representatives.c.representative_id == representative_id,
                )
            )
            if present:
                conn.execute(
                    legal_representatives.insert().values(
                        patient_ins=ins,
                        representative_id=representative_id,
                        since=datetime.now(UTC),
                    )
                )
            audit.write(conn, event)

    def set_birth_date(self, ins: str, birth_date: str) -> None:
        """Operators and tests: the birth date decides minority. It counts as given now: only
        documents created later change it (records/filing.py ``Batch.patient``)."""
        with self._writing() as conn:
            self._ensure_patient(conn, ins)
            conn.execute(
                patients.update()
                .where(patients.c.ins == ins)
                .values(
                    birth_date=birth_date,
                    birth_date_time=datetime.now(UTC),
                    birth_date_document_id=None,
                )
            )

    @staticmethod
    def _ensure_patient(conn: sa.Connection, ins: str) -> None:
        exists = conn.execute(sa.select(patients.c.ins).where(patients.c.ins == ins)).first()
        if exists is None:
            conn.execute(patients.insert().values(ins=ins, created_at=datetime.now(UTC)))

    # -- notification outbox ----------------------------------------------------------------------

    def pending_notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(notifications)
                .where(notifications.c.sent_at.is_(None))
                .order_by(notifications.c.id)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def mark_notified(self, notification_ids: Sequence[int]) -> None:
        with self._writing() as conn:
            conn.execute(
                notifications.update()
                .where(notifications.c.id.in_(list(notification_ids)))
                .values(sent_at=datetime.now(UTC))
            )
