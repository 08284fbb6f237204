"""RecordStore: documents by patient, in SQLite (embedded default) or PostgreSQL.

Filing is idempotent on the document id: the same document delivered twice is stored once.
Database failures become StoreUnavailable, which the consumer answers with a requeue.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from gateway.broker.message import DocumentMessage
from gateway.errors import StoreUnavailable
from gateway.records.schema import documents

MIGRATIONS = Path(__file__).parent / "migrations"


class Filing(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same id, same content: already filed (redelivery, resend)
    CONFLICT = "conflict"  # same id, different content: never overwrite


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
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def migrate(engine: sa.Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


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

    def file(self, message: DocumentMessage) -> Filing:
        env = message.envelope
        row = {
            "document_id": env.document_id,
            "set_id": env.set_id,
            "version": env.version,
            "patient_ins": env.patient.ins,
            "patient_ins_system": env.patient.ins_system,
            "type_code": env.type_code.code if env.type_code else None,
            "source_kind": env.source_kind,
            "sender": env.sender,
            "content_type": env.content_type,
            "sha256": env.sha256,
            "size": env.size,
            "creation_time": env.creation_time,
            "received_at": env.received_at,
            "filed_at": datetime.now(UTC),
            "trace_id": env.trace_id,
            "envelope": env.to_json(),
            "payload": message.payload,
        }
        try:
            with self.engine.begin() as conn:
                existing = conn.execute(
                    sa.select(documents.c.sha256).where(documents.c.document_id == env.document_id)
                ).scalar_one_or_none()
                if existing is not None:
                    return Filing.DUPLICATE if existing == env.sha256 else Filing.CONFLICT
                conn.execute(documents.insert().values(**row))
            return Filing.STORED
        except IntegrityError:
            # Another consumer filed the same id between our select and insert.
            return self._after_race(env.document_id, env.sha256)
        except OperationalError as exc:
            raise StoreUnavailable(f"record store unavailable: {type(exc.orig).__name__}") from None

    def _after_race(self, document_id: str, sha256: str) -> Filing:
        with self.engine.connect() as conn:
            existing = conn.execute(
                sa.select(documents.c.sha256).where(documents.c.document_id == document_id)
            ).scalar_one_or_none()
        return Filing.DUPLICATE if existing == sha256 else Filing.CONFLICT

    def documents_for_patient(self, ins: str) -> list[dict[str, Any]]:
        cols = [c for c in documents.c if c.name not in ("payload", "envelope")]
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(*cols)
                    .where(documents.c.patient_ins == ins)
                    .order_by(documents.c.filed_at)
                ).mappings()
                return [dict(r) for r in rows]
        except OperationalError as exc:
            raise StoreUnavailable(f"record store unavailable: {type(exc.orig).__name__}") from None

    def document(self, document_id: str) -> dict[str, Any] | None:
        try:
            with self.engine.connect() as conn:
                row = (
                    conn.execute(sa.select(documents).where(documents.c.document_id == document_id))
                    .mappings()
                    .first()
                )
                return dict(row) if row else None
        except OperationalError as exc:
            raise StoreUnavailable(f"record store unavailable: {type(exc.orig).__name__}") from None
