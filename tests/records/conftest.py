import pytest

from gateway.records.store import RecordStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A migrated record store on SQLite and on PostgreSQL (a throwaway database)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = RecordStore.open(url)
    yield s
    s.close()
