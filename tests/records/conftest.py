import pytest
import sqlalchemy as sa

from gateway.records.schema import metadata
from gateway.records.store import RecordStore
from tests.conftest import throwaway_database


@pytest.fixture(scope="session")
def records_pg_url(pg_admin_url):
    """One migrated PostgreSQL database for the record tests (emptied between tests):
    creating a database per test costs more than the tests themselves."""
    with throwaway_database(pg_admin_url, "passerelle_records") as url:
        yield url


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
