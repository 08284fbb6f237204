"""Shared test fixtures: real RabbitMQ and PostgreSQL on 127.0.0.1, isolated per test.

Isolation: every test that touches the broker gets its own name prefix (exchanges and queues
are deleted afterwards); every test that touches PostgreSQL gets its own database (dropped
afterwards). Tests that read ../shared skip where it is absent, and fail instead when
GATEWAY_REQUIRE_SHARED=1 (CI).
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
import uuid
from pathlib import Path

import pika
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(url: str, default_port: int) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared, or a skip (a failure in CI) saying it is absent."""
    if SHARED.is_dir():
        return SHARED
    reason = f"{SHARED} not found: the shared material sits beside the checkout in CI"
    if os.environ.get("GATEWAY_REQUIRE_SHARED") == "1":
        pytest.fail(reason + " (GATEWAY_REQUIRE_SHARED=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not _reachable(AMQP_URL, 5672):
        pytest.fail(
            f"RabbitMQ is not reachable at {AMQP_URL}: start it with `rabbitmq-server -detached`"
        )
    return AMQP_URL


class BrokerNamespace:
    """Names under a unique prefix; what is declared under it is deleted after the test."""

    def __init__(self, url: str) -> None:
        from gateway.broker.names import Names

        self.url = url
        self.prefix = f"ptest-{uuid.uuid4().hex[:10]}"
        self.names = Names(self.prefix)
        self._tables: list = []
        self._queues: set[str] = set()

    def track(self, table) -> None:
        """Delete, afterwards, the topology the gateway declares for ``table``."""
        self._tables.append(table)

    def track_queue(self, name: str) -> None:
        self._queues.add(name)

    def cleanup(self) -> None:
        from gateway.broker.topology import Declaration, delete, plan

        decls = [d for t in self._tables for d in plan(t, self.names)]
        decls += [Declaration("queue", q, {}) for q in self._queues]
        decls += [
            Declaration("exchange", self.names.exchange, {}),
            Declaration("exchange", self.names.dead_letter_exchange, {}),
        ]
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            delete(conn.channel(), decls)
        finally:
            conn.close()


@pytest.fixture
def broker_ns(amqp_url: str):
    ns = BrokerNamespace(amqp_url)
    yield ns
    ns.cleanup()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    if not _reachable(PG_ADMIN_URL, 5432):
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL}: start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    return PG_ADMIN_URL


@contextlib.contextmanager
def throwaway_database(admin_url: str, prefix: str = "passerelle_test"):
    """URL of a new, empty PostgreSQL database, dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(admin_url)
    try:
        yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_admin_url: str):
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    with throwaway_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def records_pg_url(pg_admin_url):
    """One migrated PostgreSQL database for the record and tracking tests (emptied between
    tests): creating a database per test costs more than the tests themselves."""
    with throwaway_database(pg_admin_url, "passerelle_records") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A migrated, empty record store (records and tracking tables) on SQLite and on
    PostgreSQL."""
    import sqlalchemy as sa

    from gateway.records.schema import metadata
    from gateway.records.store import RecordStore

    if request.param == "sqlite":
        s = RecordStore.open(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    else:
        s = RecordStore.open(request.getfixturevalue("records_pg_url"))
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        with s.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY"))
    yield s
    s.close()


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory) -> Path:
    """One development signing key for the whole run."""
    from gateway.signing.keystore import init_dev_key

    directory = tmp_path_factory.mktemp("keys")
    init_dev_key(directory)
    return directory


@pytest.fixture
def fixture_bytes():
    def read(relative: str) -> bytes:
        return (FIXTURES / relative).read_bytes()

    return read


class GatewayThread:
    """The whole gateway (Runtime) in a background thread, on ephemeral ports."""

    def __init__(self, settings) -> None:
        import threading

        from gateway.runtime import Runtime

        self.runtime = Runtime(settings)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="gateway-under-test", daemon=True)

    def _main(self) -> None:
        import asyncio

        try:
            asyncio.run(self.runtime.run(on_ready=lambda _rt: self._ready.set()))
        except BaseException as exc:  # surfaced to the test by start()
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 30.0) -> GatewayThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("gateway did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self.runtime.request_stop()
        self._thread.join(30)

    @property
    def http_url(self) -> str:
        host, port = self.runtime.http_address
        return f"http://{host}:{port}"

    @property
    def mllp(self) -> tuple[str, int]:
        return self.runtime.mllp_address

    @property
    def services(self):
        return self.runtime.services


def gateway_env(broker_ns: BrokerNamespace, database_url: str, keys_dir: Path, **extra) -> dict:
    return {
        "GATEWAY_HTTP_ADDR": "127.0.0.1:0",
        "GATEWAY_MLLP_ADDR": "127.0.0.1:0",
        "GATEWAY_AMQP_URL": broker_ns.url,
        "GATEWAY_AMQP_PREFIX": broker_ns.prefix,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_KEYS_DIR": str(keys_dir),
        "GATEWAY_ROUTING_FILE": str(ROOT / "routing.yaml"),
        # Pipeline in threads: starting worker processes for every test gateway costs seconds;
        # tests that are about workers ask for them (tests/e2e/test_pipeline_workers_flow.py).
        "GATEWAY_PIPELINE_WORKERS": "0",
        # Filing in threads too, for the same reason (tests/records/test_filing_process.py).
        "GATEWAY_FILING_PROCESS": "0",
        **extra,
    }


@pytest.fixture
def start_gateway(broker_ns, keys_dir, tmp_path):
    """Factory: start_gateway(database_url=None, **env) → a running GatewayThread."""
    from gateway.config import Settings
    from gateway.routing import loader

    started: list[GatewayThread] = []

    def start(database_url: str | None = None, **extra) -> GatewayThread:
        url = database_url or f"sqlite:///{tmp_path / 'records.sqlite3'}"
        env = gateway_env(broker_ns, url, keys_dir, **extra)
        settings = Settings.from_env(env, root=ROOT)
        broker_ns.track(loader.load(settings.routing_file))
        gw = GatewayThread(settings).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()
