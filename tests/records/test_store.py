"""The record store on SQLite and on PostgreSQL: idempotent filing."""

import dataclasses

import pytest
import sqlalchemy as sa

from gateway.errors import StoreUnavailable
from gateway.records.audit import Action, Actor, Event
from gateway.records.filing import Batch, PatientRaced, file_message
from gateway.records.schema import patients
from gateway.records.store import Filing, RecordStore
from tests.records.builders import INS, message


def test_file_then_read_back_by_ins(store):
    assert store.file(message(payload=b"<doc/>")) is Filing.STORED
    [row] = store.documents_for_patient("184127505612355")
    assert row["document_id"] == "1.2.3^1" and row["type_code"] == "11502-2"
    assert store.document("1.2.3^1")["payload"] == b"<doc/>"


def test_same_document_twice_is_stored_once(store):
    assert store.file(message()) is Filing.STORED
    assert store.file(message()) is Filing.DUPLICATE
    assert len(store.documents_for_patient("184127505612355")) == 1


def test_same_id_with_other_content_is_a_conflict_and_never_overwrites(store):
    store.file(message(payload=b"<doc/>"))
    assert store.file(message(payload=b"<other/>")) is Filing.CONFLICT
    assert store.document("1.2.3^1")["payload"] == b"<doc/>"


def test_unreachable_database_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        RecordStore.open("postgresql://nobody@127.0.0.1:1/none")


def test_migrations_reach_head_from_the_first_revision_keeping_documents(tmp_path):
    """A store filed under revision 0001 upgrades in place: its documents become current."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from gateway.records.store import MIGRATIONS, create_engine

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO documents (document_id, set_id, version, patient_ins, source_kind,"
                " sender, content_type, sha256, size, received_at, filed_at, trace_id, envelope,"
                " payload) VALUES ('old^1', 'old.set', 1, '184127505612355', 'cda', 's', 'x',"
                " 'h', 1, 'r', '2026-01-01 00:00:00', 't', '{}', x'00')"
            )
        )
    engine.dispose()
    store = RecordStore.open(url)
    try:
        assert store.document("old^1")["status"] == "current"
        # and the next version of that set supersedes it
        assert store.file(message("new^2", set_id="old.set", version=2)) is Filing.STORED
        assert store.document("old^1")["status"] == "superseded"
    finally:
        store.close()


def test_a_batch_is_filed_in_one_transaction_each_document_deciding_alone(store):
    store.file(message("a^1", payload=b"<a/>", set_id="set-a"))
    results = store.file_many(
        [
            (message("b^1", set_id="set-b"), "verified"),
            (message("a^1", payload=b"<changed/>", set_id="set-a"), "verified"),  # conflict
            (message("c^2", set_id="set-c", version=2, birth_date=None), "verified"),
            (message("c^1", set_id="set-c", version=1), "verified"),  # late: history
            (message("b^1", set_id="set-b"), "verified"),  # twice in one batch
        ]
    )
    assert results == [
        Filing.STORED,
        Filing.CONFLICT,
        Filing.STORED,
        Filing.HISTORY,
        Filing.DUPLICATE,
    ]
    rows = {r["document_id"]: r for r in store.documents_for_patient("184127505612355")}
    assert sorted(rows) == ["a^1", "b^1", "c^1", "c^2"]
    assert rows["c^2"]["status"] == "current" and rows["c^1"]["status"] == "superseded"
    assert store.document("a^1")["payload"] == b"<a/>"
    assert rows["b^1"]["signature_status"] == "verified"


def test_a_document_that_fails_in_a_batch_is_rolled_back_alone(store, monkeypatch):
    """Its savepoint is rolled back (nothing of it stays); the others commit."""
    from gateway.records import store as store_module

    real = store_module.file_message

    def failing_after_writing(conn, msg, status, batch=None):
        filing = real(conn, msg, status, batch)  # every row of it written, then:
        if msg.envelope.document_id == "bad^1":
            raise RuntimeError("fails after its inserts")
        return filing

    monkeypatch.setattr(store_module, "file_message", failing_after_writing)
    results = store.file_many(
        [
            (message("ok^1", set_id="set-ok"), "verified"),
            (message("bad^1", set_id="set-bad"), "verified"),
            (message("ok^2", set_id="set-ok2"), "verified"),
        ]
    )
    assert results[0] is Filing.STORED and results[2] is Filing.STORED
    assert isinstance(results[1], RuntimeError)
    ids = {r["document_id"] for r in store.documents_for_patient("184127505612355")}
    assert ids == {"ok^1", "ok^2"}
    assert store.document("bad^1") is None
    pending = {n["document_id"] for n in store.pending_notifications(10)}
    assert pending == {"ok^1", "ok^2"}  # its notification went with its savepoint


@pytest.mark.postgres
def test_payloads_are_compressed_with_lz4_on_postgresql(records_pg_url):
    """0004: pglz spent ~4 ms of server CPU per 130 KB CR-BIO and then stored it raw."""
    import sqlalchemy as sa

    store = RecordStore.open(records_pg_url)
    try:
        with store.engine.connect() as conn:
            methods = dict(
                conn.execute(
                    sa.text(
                        "SELECT attname, attcompression FROM pg_attribute"
                        " WHERE attrelid = 'documents'::regclass"
                        " AND attname IN ('payload', 'envelope')"
                    )
                ).all()
            )
    finally:
        store.close()
    assert methods == {"payload": "l", "envelope": "l"}


def test_a_document_and_its_withdrawal_in_one_batch(store):
    """The withdrawal reads the authors that the same batch just filed."""
    results = store.file_many(
        [
            (message("d^1"), "verified"),
            (message("del^1", action="delete", replaces="d^1"), "verified"),
        ]
    )
    assert results == [Filing.STORED, Filing.WITHDRAWN]
    assert store.document("d^1")["status"] == "withdrawn"


def test_a_batch_folds_its_statements_and_does_not_fall_back(store):
    """A new patient's three documents and a known patient's one: the new patient is
    inserted once, with the birth date of the newest document; the known one's corrected birth
    date is
    one update; the four sets are locked in one statement; documents, sets, authors, outbox
    and audit rows go in one statement per table; nothing fails,
    so the batch is not filed again document by document (one savepoint, not five)."""
    import sqlalchemy as sa

    new, known = "299127505612399", "184127505612355"
    store.file(message("k^1", ins=known, set_id="set-k1", birth_date="19841205"))
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()[:3]))

    batch = [
        (
            message(f"n^{n}", ins=new, set_id=f"set-n{n}", birth_date=birth, created=f"2026110{n}"),
            "verified",
        )
        for n, birth in ((1, "19841205"), (2, None), (3, "19851205"))
    ] + [
        (
            message("k^2", ins=known, set_id="set-k2", birth_date="19841206", created="20261102"),
            "verified",
        )
    ]
    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        results = store.file_many(batch)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    assert results == [Filing.STORED] * 4
    assert store.patient(new).birth_date == "19851205"
    assert store.patient(known).birth_date == "19841206"
    count = statements.count
    assert count("INSERT INTO patients") == 1
    assert count("UPDATE patients SET") == 1
    # no statement per document: its set locked with the others, its rows held till the end
    assert sum(s.startswith("SELECT document_sets.set_id") for s in statements) == 1
    assert count("INSERT INTO documents") == 1
    assert count("INSERT INTO document_sets") == 1
    assert not any(s.startswith("UPDATE document_sets") for s in statements)
    assert count("INSERT INTO document_authors") == 1
    assert count("INSERT INTO notifications") == 1
    assert count("INSERT INTO audit_events") == 1
    assert sum(s.startswith("SAVEPOINT") for s in statements) == 1
    assert len(store.pending_notifications(10)) == 5
    trail = [(e["document_id"], e["outcome"]) for e in reversed(store.audit_trail(new))]
    assert trail == [("n^1", "stored"), ("n^2", "stored"), ("n^3", "changed"), ("n^3", "stored")]


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgres"], indirect=True)  # SQLite has no row locks
def test_two_batches_correcting_one_patient_do_not_deadlock(store, monkeypatch):
    """Batch A corrects the patient's birth date in set a, then files in set c; batch B,
    started while A is between the two, files in set c, then corrects the birth date in set
    d. Had A locked the patient row at its first document while B held set c, which A wants
    next, PostgreSQL would abort one batch. A batch locks all its sets when it begins (in
    set order) and writes patient rows at its end: B waits for set c until A commits, then
    files c^2 as history (c^3 is current) and corrects the birth date last."""
    import threading
    import time

    from gateway.records import store as store_module

    A2, D2 = "20261102", "20261103"  # a^2 corrects the birth date, d^2 (newer) again
    for s in "acd":
        store.file(message(f"{s}^1", set_id=f"set-{s}", version=1))
    a_between, real = threading.Event(), store_module.file_message

    def pausing(conn, msg, status, batch=None):
        filing = real(conn, msg, status, batch)
        if msg.envelope.document_id == "a^2":  # A has filed in set a, holding its lock
            a_between.set()
            time.sleep(1.5)  # B runs meanwhile (PostgreSQL's deadlock_timeout is 1 s)
        return filing

    monkeypatch.setattr(store_module, "file_message", pausing)
    results: dict[str, object] = {}

    def batch(name: str, items) -> None:
        try:
            results[name] = store.file_many(items)
        except Exception as exc:  # StoreUnavailable on a deadlock
            results[name] = exc

    a = threading.Thread(
        target=batch,
        args=(
            "A",
            [
                (
                    message("a^2", set_id="set-a", version=2, birth_date="19851205", created=A2),
                    "verified",
                ),
                (message("c^3", set_id="set-c", version=3, birth_date=None), "verified"),
            ],
        ),
    )
    a.start()
    assert a_between.wait(10)
    batch(
        "B",
        [
            (message("c^2", set_id="set-c", version=2, birth_date=None), "verified"),
            (
                message("d^2", set_id="set-d", version=2, birth_date="19861205", created=D2),
                "verified",
            ),
        ],
    )
    a.join(30)
    assert results == {
        "A": [Filing.STORED, Filing.STORED],
        "B": [Filing.HISTORY, Filing.STORED],
    }
    assert store.patient("184127505612355").birth_date == "19861205"  # B committed last
    assert store.document("c^3")["status"] == "current"
    assert store.document("c^2")["status"] == "superseded"


def test_in_a_batch_the_birth_date_of_the_newest_current_document_wins(store):
    """As when each document wrote the patient row in turn: a correction by a newer document,
    then the stored date again by a newer one still, leaves the stored date; a document older
    than the one that gave the birth date changes nothing. Each change is audited."""
    store.file(message("k^1", set_id="set-k1", birth_date="19841205", created="20261101"))
    results = store.file_many(
        [
            (
                message("k^2", set_id="set-k2", birth_date="19851205", created="20261102"),
                "verified",
            ),
            (message("k^3", set_id="set-k3", birth_date=None, created="20261105"), "verified"),
            (
                message("k^4", set_id="set-k4", birth_date="19841205", created="20261103"),
                "verified",
            ),
            (
                message("k^5", set_id="set-k5", birth_date="19861205", created="20261102"),
                "verified",
            ),
        ]
    )
    assert results == [Filing.STORED] * 4
    assert store.patient("184127505612355").birth_date == "19841205"
    changes = [
        (e["document_id"], e["outcome"], e["reason"])
        for e in reversed(store.audit_trail("184127505612355"))
        if e["action"] == "patient.birth-date"
    ]
    assert changes == [
        ("k^2", "changed", "birth date changed"),  # no dates in the patient's trail
        ("k^4", "changed", "birth date changed"),
    ]


def test_an_ins_oid_named_by_another_filing_meanwhile_is_not_overwritten(store):
    """A patient row without OID (opened by a grant) takes the first document's. Two filings
    reading it at once, one under the test OID and one under the INS-NIR's, must not both
    file: the one whose write finds the OID already named is filed again, and refused."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): no two read the row at once")
    grant = Event(Actor("patient", INS), Action.GRANT, "allowed", INS)
    store.set_access(INS, "810000000002", "grant", grant)
    test_oid = message("t^1")
    test_oid = dataclasses.replace(
        test_oid,
        envelope=dataclasses.replace(
            test_oid.envelope,
            patient=dataclasses.replace(
                test_oid.envelope.patient, ins_system="1.2.250.1.213.1.4.10"
            ),
        ),
    )
    with store.engine.connect() as first:
        filing = first.begin()
        batch = Batch.begin(first, [test_oid])
        file_message(first, test_oid, "verified", batch)
        with store.engine.begin() as other:  # meanwhile another filing names the INS-NIR OID
            other.execute(
                patients.update()
                .where(patients.c.ins == INS)
                .values(ins_system="1.2.250.1.213.1.4.8")
            )
        with pytest.raises(PatientRaced):
            batch.finish(first)
        filing.rollback()  # as the store does when a filing raises
    # through the store: filed again, the test document is refused as a conflict
    assert store.file(test_oid) is Filing.CONFLICT
    with store.engine.connect() as conn:
        recorded = conn.execute(sa.select(patients.c.ins_system).where(patients.c.ins == INS))
        assert recorded.scalar_one() == "1.2.250.1.213.1.4.8"
