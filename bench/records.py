"""The record store: filing (new documents, new versions) and the patient's listing, on the
embedded SQLite store and on PostgreSQL (a throwaway database on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid

import psycopg

from bench.common import Context, measure
from gateway.broker.message import DocumentMessage
from gateway.envelope import Code, Envelope, Party, Patient
from gateway.records.access import Caller, CallerKind
from gateway.records.service import RecordService
from gateway.records.store import DocumentQuery, RecordStore

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
INS = "184127505612355"
PAYLOAD = b"<ClinicalDocument>" + b"x" * 8000 + b"</ClinicalDocument>"


def _message(doc_id: str, set_id: str, version: int) -> DocumentMessage:
    env = Envelope(
        document_id=doc_id,
        source_kind="cda",
        content_type="application/hl7-cda+xml",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        size=len(PAYLOAD),
        sender="bench",
        received_at="2026-11-01T09:30:00+00:00",
        trace_id=doc_id,
        set_id=set_id,
        version=version,
        patient=Patient(ins=INS, ins_system="1.2.250.1.213.1.4.8", birth_date="19841205"),
        type_code=Code("11502-2", "2.16.840.1.113883.6.1"),
        creation_time="20261101093000+0100",
        authors=(Party(id="810001234567", organisation=Party(id="1750000001")),),
    )
    return DocumentMessage(env, PAYLOAD)


def _section(label: str, store: RecordStore) -> dict[str, dict]:
    counter = itertools.count()

    def file_new() -> None:
        n = next(counter)
        store.file(_message(f"b^{n}", f"set-{n}", 1))

    versions = itertools.count(1)

    def file_version() -> None:
        v = next(versions)
        store.file(_message(f"v^{v}", "one-set", v))

    service = RecordService(store)
    patient = Caller(CallerKind.PATIENT, INS)
    rows = {
        f"{label}: file a new document": measure(file_new),
        f"{label}: file the next version": measure(file_version),
        f"{label}: redelivery (duplicate)": measure(lambda: store.file(_message("v^1", "x", 1))),
    }
    count = len(store.documents_for_patient(INS))
    rows[f"{label}: list ({count} docs, audited)"] = measure(
        lambda: service.list(patient, INS, DocumentQuery())
    )
    return rows


def rows(ctx: Context) -> dict[str, dict]:
    out: dict[str, dict] = {}
    store = RecordStore.open(f"sqlite:///{ctx.workdir / 'records.sqlite3'}")
    try:
        out.update(_section("SQLite", store))
    finally:
        store.close()
    name = f"passerelle_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return out  # no PostgreSQL here: the SQLite rows stand alone
    try:
        store = RecordStore.open(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
        try:
            out.update(_section("PostgreSQL", store))
        finally:
            store.close()
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out
