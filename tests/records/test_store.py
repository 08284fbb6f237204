"""The record store on SQLite and on PostgreSQL: idempotent filing."""

import pytest

from gateway.errors import StoreUnavailable
from gateway.records.store import Filing, RecordStore
from tests.records.builders import message


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
