"""The record store on SQLite and on PostgreSQL: idempotent filing."""

import pytest

from gateway.broker.message import DocumentMessage
from gateway.envelope import Code, Envelope, Patient
from gateway.errors import StoreUnavailable
from gateway.records.store import Filing, RecordStore


def message(doc_id="1.2.3^1", payload=b"<doc/>", ins="184127505612355") -> DocumentMessage:
    import hashlib

    env = Envelope(
        document_id=doc_id,
        source_kind="cda",
        content_type="application/hl7-cda+xml",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        sender="s",
        received_at="2026-11-01T09:30:00+00:00",
        trace_id="t",
        patient=Patient(ins=ins, ins_system="1.2.250.1.213.1.4.8"),
        type_code=Code("11502-2", "2.16.840.1.113883.6.1"),
    )
    return DocumentMessage(env, payload)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = RecordStore.open(url)
    yield s
    s.close()


def test_file_then_read_back_by_ins(store):
    assert store.file(message()) is Filing.STORED
    [row] = store.documents_for_patient("184127505612355")
    assert row["document_id"] == "1.2.3^1" and row["type_code"] == "11502-2"
    assert store.document("1.2.3^1")["payload"] == b"<doc/>"


def test_same_document_twice_is_stored_once(store):
    assert store.file(message()) is Filing.STORED
    assert store.file(message()) is Filing.DUPLICATE
    assert len(store.documents_for_patient("184127505612355")) == 1


def test_same_id_with_other_content_is_a_conflict_and_never_overwrites(store):
    store.file(message())
    assert store.file(message(payload=b"<other/>")) is Filing.CONFLICT
    assert store.document("1.2.3^1")["payload"] == b"<doc/>"


def test_unreachable_database_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        RecordStore.open("postgresql://nobody@127.0.0.1:1/none")
