import urllib.parse
import uuid

import psycopg
import pytest
import sqlalchemy as sa

from gateway.records.schema import metadata
from gateway.records.store import RecordStore


@pytest.fixture(scope="session")
def records_pg_url(pg_admin_url):
    """One migrated PostgreSQL database for the record tests (emptied between tests):
    creating a database per test costs more than the tests themselves."""
    name = f"passerelle_records_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(pg_admin_url)
    yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A migrated, empty record store on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        s = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    else:
        s = RecordStore.open(request.getfixturevalue("records_pg_url"))
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        with s.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY"))
    yield s
    s.close()
