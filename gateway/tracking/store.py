"""TrackingStore: tracking events in and message timelines out, in the record store's database.

Writes come in batches (one transaction per batch, from the tracker's writer thread). Reads
serve ``GET /messages``, ``GET /messages/{id}`` and the message browser; every read is bounded
(``MAX_LIST``) and returns metadata columns only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import StoreUnavailable
from gateway.records.in_lists import chunks
from gateway.tracking.events import (
    FILED,
    PARKED,
    RECEIVED,
    STATUS_REPLACES,
    Event,
    masked_control_id,
)
from gateway.tracking.schema import tracked_events, tracked_messages

MAX_LIST = 500
_SUMMARY_COLUMNS = frozenset(c.name for c in tracked_messages.c) - {
    "trace_id",
    "status",
    "updated_at",
}


# Statements of the write path built once (building them per event cost more CPU than
# running them); parameters go in at execution.
_row = tracked_messages.c
_UPDATE_SUMMARY = tracked_messages.update().where(_row.trace_id == sa.bindparam("b_trace_id"))


def _literal_in(column, names) -> sa.ColumnElement[bool]:
    # Inlined (our own constants), not bound: an IN of bound values expands per execution,
    # which executemany refuses.
    return column.in_([sa.literal_column(f"'{s}'") for s in sorted(names)])


def _replaceable(status, name: str) -> sa.ColumnElement[bool]:
    """SQL: the step ``name`` may replace ``status`` (STATUS_REPLACES), or refresh itself."""
    replaces = STATUS_REPLACES[name]
    return sa.true() if replaces is None else _literal_in(status, replaces | {name})


def _status_update(name: str) -> sa.Update:
    # updated_at is when the current status happened: an older event never replaces it
    return tracked_messages.update().where(
        (_row.trace_id == sa.bindparam("b_trace_id"))
        & (_row.updated_at <= sa.bindparam("b_at"))
        & _replaceable(_row.status, name)
    )


# Steps a record consumer writes: with two gateways on one database, the one that files a
# message may write its step before the answering one has inserted the message's row
# (that one lingers). Such a step inserts the row itself, bare, and the answering gateway's
# insert then completes it (``_new_rows``). Both are upserts on the trace id, so the unique
# index orders them whichever commits first: no window where a step finds no row and is lost.
_CONSUMER_STEPS = frozenset({FILED, PARKED})
_STATUS_UPDATES = {
    name: _status_update(name) for name in STATUS_REPLACES if name not in _CONSUMER_STEPS
}


def _insert(dialect: str):
    return (postgresql if dialect == "postgresql" else sqlite).insert(tracked_messages)


@functools.cache
def _step_upsert(dialect: str, name: str):
    """A consumer step's status: on its message's row when there is one (as ``_status_update``
    would), else on a bare row that the message's ``received`` will complete."""
    ins = _insert(dialect)
    return ins.on_conflict_do_update(
        index_elements=[_row.trace_id],
        set_={"status": ins.excluded.status, "updated_at": ins.excluded.updated_at},
        where=(_row.updated_at <= ins.excluded.updated_at) & _replaceable(_row.status, name),
    )


@functools.cache
def _new_rows(dialect: str):
    """The rows of messages received in a batch. Where a consumer step got there first (its
    bare row), the new row takes its place but keeps that step's status unless its own may
    replace it, as if the step had come right after ``received`` (``_take_status``)."""
    ins = _insert(dialect)
    new = ins.excluded
    replaces = sa.or_(
        *(
            (new.status == sa.literal_column(f"'{name}'"))
            & _replaceable(_row.status, name)
            & (_row.updated_at <= new.updated_at)
            for name in sorted(STATUS_REPLACES)
        )
    )
    columns = {c.name: new[c.name] for c in tracked_messages.c if c.name != "trace_id"}
    columns["status"] = sa.case((replaces, new.status), else_=_row.status)
    columns["updated_at"] = sa.case((replaces, new.updated_at), else_=_row.updated_at)
    return ins.on_conflict_do_update(index_elements=[_row.trace_id], set_=columns)


def _bare_row(event: Event) -> dict[str, Any]:
    """A consumer step's row until its ``received`` completes it (transport and sender are
    not known to the consumer: empty, and listed by when the step happened)."""
    return {"trace_id": event.trace_id, "status": event.name, "updated_at": event.at,
            "received_at": event.at, "transport": "", "sender": ""}  # fmt: skip


def commit_without_waiting_for_the_disk(conn: sa.Connection) -> None:
    """PostgreSQL: this transaction's commit returns before its WAL is flushed to disk.

    Tracking is observability, not the durable path (the tracker drops events when it falls
    behind or the database is down), yet each tracking write's commit waited for a WAL flush
    of its own: a third of the server's flushes at 120 raw ORU^R01/s (7,100-7,300 -> 4,800-4,900
    per 90 s), on the disk RabbitMQ's confirms wait for (docs/performance.md, "Stalls at half
    load"). A database crash can lose the last ~0.6 s of steps (3 x wal_writer_delay), never
    a document: the record store's transactions keep the server's setting (SET LOCAL ends
    with the transaction)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


_LOCK_ROWS = (
    sa.select(_row.trace_id)
    .where(_row.trace_id.in_(sa.bindparam("trace_ids", expanding=True)))
    .order_by(_row.trace_id)
    .with_for_update()
)


def _lock(conn: sa.Connection, events: Sequence[Event]) -> None:
    """Lock the summary rows ``events`` will update, in trace id order, before updating them
    statement by statement. Another gateway's tracker updates the same rows (one answers a
    message, the other's consumer files it), each in its own order: without one order taken
    up front, the two writes could deadlock and one batch of events would be lost."""
    traces = sorted({e.trace_id for e in events})
    for chunk in chunks(traces):
        conn.execute(_LOCK_ROWS, {"trace_ids": chunk})


def _apply_all(conn: sa.Connection, events: Sequence[Event]) -> None:
    """Each event's change to its message's summary row, in order. A run of events of distinct
    messages touches distinct rows, so its order within does not matter: its statements go
    together, one executemany per statement shape (a round trip each, not one per event)."""
    run: list[Event] = []
    traces: set[str] = set()
    for event in events:
        if event.trace_id in traces:
            _apply_run(conn, run)
            run, traces = [], set()
        run.append(event)
        traces.add(event.trace_id)
    _apply_run(conn, run)


def _apply_run(conn: sa.Connection, run: Sequence[Event]) -> None:
    """``run``'s changes (one event per message): RECEIVED inserts the row; any other event
    updates the summary columns it carries, then the status when it may replace it."""
    inserts: list[dict[str, Any]] = []
    summaries: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    statuses: dict[str, list[dict[str, Any]]] = {}
    steps: dict[str, list[dict[str, Any]]] = {}
    for event in run:
        summary = _summary(event)
        if event.name == RECEIVED:
            inserts.append(
                dict(trace_id=event.trace_id, status=RECEIVED, updated_at=event.at, **summary)
            )
            continue
        if summary:  # SET takes the columns named by the parameters: grouped by those names
            summaries.setdefault(tuple(sorted(summary)), []).append(
                {"b_trace_id": event.trace_id, **summary}
            )
        if event.name in _CONSUMER_STEPS:
            steps.setdefault(event.name, []).append(_bare_row(event))
        elif event.name in STATUS_REPLACES:
            statuses.setdefault(event.name, []).append(
                {"b_trace_id": event.trace_id, "b_at": event.at, "status": event.name,
                 "updated_at": event.at}
            )  # fmt: skip
    for row in inserts:  # the literal path only (rare); their columns vary
        conn.execute(tracked_messages.insert(), row)
    for params in summaries.values():
        conn.execute(_UPDATE_SUMMARY, params)
    for name, params in statuses.items():
        conn.execute(_STATUS_UPDATES[name], params)
    for name, rows in steps.items():  # in trace id order, as every write takes its rows
        conn.execute(_step_upsert(conn.dialect.name, name), sorted(rows, key=_trace_id))


class TrackingStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # -- write --------------------------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> None:
        """Record ``events`` in order, in one transaction.

        A batch holds most steps of the messages it names (received … accepted): the events go
        in with one multi-row INSERT, and the summary row of each message received in this
        batch is computed here and inserted once, rather than inserted then updated once per
        step (~11 statements per message before). Steps of messages received earlier update
        their row as they come."""
        try:
            with self.engine.begin() as conn:
                commit_without_waiting_for_the_disk(conn)
                if events:
                    conn.execute(tracked_events.insert(), [_event_row(e) for e in events])
                folded = _fold(events)
                if folded is None:  # not one RECEIVED per new message: the literal way
                    _lock(conn, events)
                    _apply_all(conn, events)
                    return
                new_rows, later = folded
                _lock(conn, later)  # rows that exist, then the new ones: both in trace id order
                if new_rows:
                    rows = sorted(new_rows, key=_trace_id)
                    conn.execute(_new_rows(conn.dialect.name), rows)
                _apply_all(conn, later)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"tracking store unavailable: {type(exc).__name__}") from None

    # -- read ---------------------------------------------------------------------------------

    def message(self, trace_id: str) -> dict[str, Any] | None:
        """The message's summary and its timeline, oldest event first; None when unknown."""
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(tracked_messages).where(tracked_messages.c.trace_id == trace_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            events = conn.execute(
                sa.select(tracked_events.c.at, tracked_events.c.event, tracked_events.c.detail)
                .where(tracked_events.c.trace_id == trace_id)
                .order_by(tracked_events.c.at, tracked_events.c.id)
                .limit(MAX_LIST)
            ).mappings()
            timeline = [
                {"at": _iso(e["at"]), "event": e["event"], **json.loads(e["detail"])}
                for e in events
            ]
        return {**_plain(row), "timeline": timeline}

    def search(
        self,
        status: str | None = None,
        sender: str | None = None,
        type_code: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        control_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Most recent first. ``sender`` matches a substring; the others match exactly, the
        control id as it was stored (masked the same way: ``masked_control_id``)."""
        c = tracked_messages.c
        query = sa.select(tracked_messages).order_by(c.received_at.desc(), c.trace_id)
        if status:
            query = query.where(c.status == status)
        if sender:
            escaped = sender.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(c.sender.like(f"%{escaped}%", escape="\\"))
        if type_code:
            query = query.where(c.type_code == type_code)
        if control_id:
            query = query.where(c.control_id == masked_control_id(control_id))
        if since:
            query = query.where(c.received_at >= since)
        if until:
            query = query.where(c.received_at < until)
        with self._read() as conn:
            rows = conn.execute(query.limit(max(1, min(limit, MAX_LIST)))).mappings()
            return [_plain(r) for r in rows]

    def counts(self, since: datetime | None = None) -> dict[str, int]:
        """Messages per status (received since ``since`` when given)."""
        c = tracked_messages.c
        query = sa.select(c.status, sa.func.count()).group_by(c.status)
        if since:
            query = query.where(c.received_at >= since)
        with self._read() as conn:
            return {status: n for status, n in conn.execute(query)}

    def _read(self):
        return _Reading(self.engine)


class _Reading:
    """A read connection whose database failures become StoreUnavailable."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._conn: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        try:
            self._conn = self._engine.connect()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"tracking store unavailable: {type(exc).__name__}") from None
        return self._conn

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._conn is not None:
            self._conn.close()
        if exc is not None and isinstance(exc, SQLAlchemyError):
            raise StoreUnavailable(f"tracking store unavailable: {type(exc).__name__}") from None
        return False


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite gives naive datetimes back; they were written in UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="milliseconds")


def _plain(row) -> dict[str, Any]:
    out = dict(row)
    out["received_at"] = _iso(out["received_at"])
    out["updated_at"] = _iso(out["updated_at"])
    out["destinations"] = [d for d in (out.get("destinations") or "").split(",") if d]
    out["rules"] = [r for r in (out.get("rules") or "").split(",") if r]
    return out


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "trace_id": event.trace_id,
        "at": event.at,
        "event": event.name,
        "detail": json.dumps(event.detail, ensure_ascii=False, default=str),
    }


def _summary(event: Event) -> dict[str, Any]:
    return {k: v for k, v in event.summary.items() if k in _SUMMARY_COLUMNS}


def _trace_id(row: dict[str, Any]) -> str:
    return row["trace_id"]


def _take_status(row: dict[str, Any], name: str, at: datetime) -> None:
    """``row``'s status becomes ``name`` when that step may replace it (as the UPDATEs do)."""
    if name not in STATUS_REPLACES:
        return
    replaces = STATUS_REPLACES[name]
    allowed = replaces is None or row["status"] in replaces | {name}
    if allowed and row["updated_at"] <= at:
        row["status"], row["updated_at"] = name, at


def _fold(events: Sequence[Event]) -> tuple[list[dict[str, Any]], list[Event]] | None:
    """(summary rows of the messages RECEIVED in ``events``, each with its later steps applied
    as ``_apply_all``'s statements would, in order; the events of other messages, for
    ``_apply_all``).
    A step before its message's RECEIVED in the batch is dropped, as its UPDATE would match no
    row. None when a message is RECEIVED twice (the INSERT must fail as it always did)."""
    rows: dict[str, dict[str, Any]] = {}
    later: list[Event] = []
    received = {e.trace_id for e in events if e.name == RECEIVED}
    for event in events:
        row = rows.get(event.trace_id)
        if event.name == RECEIVED:
            if row is not None:
                return None
            rows[event.trace_id] = {
                **dict.fromkeys(_SUMMARY_COLUMNS),
                **_summary(event),
                "trace_id": event.trace_id,
                "status": RECEIVED,
                "updated_at": event.at,
            }
            continue
        if row is None:
            if event.trace_id not in received:
                later.append(event)
            continue
        row.update(_summary(event))
        _take_status(row, event.name, event.at)
    return list(rows.values()), later
