"""A real gateway for the end-to-end bench: `gateway serve` subprocesses on free ports.

Every stack has its own AMQP prefix and its own record store (a throwaway PostgreSQL
database when the server answers, else SQLite), shared by the stack's processes as N
machines would share them; all of it is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika

from bench.common import ROOT, Context
from bench.harness import load
from bench.harness.procs import Tree, free_port, stop, wait_listening

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
START_TIMEOUT_S = 90.0
DRAIN_TIMEOUT_S = float(os.environ.get("BENCH_DRAIN_SECONDS", "15"))


@dataclass
class Gateway:
    proc: subprocess.Popen
    http: tuple[str, int]
    mllp: tuple[str, int]
    log: Path


@dataclass
class Stack:
    prefix: str
    database_url: str
    gateways: list[Gateway] = field(default_factory=list)
    filers: list[Gateway] = field(default_factory=list)  # file records, take no traffic

    @property
    def http_targets(self) -> list[tuple[str, int]]:
        return [g.http for g in self.gateways]

    @property
    def mllp_targets(self) -> list[tuple[str, int]]:
        return [g.mllp for g in self.gateways]

    def sender(self, transport: str) -> tuple[load.Opener, list[tuple[str, int]]]:
        """How to send to the gateways: ``"mllp"`` (HL7v2, ACK awaited), else ``"http"`` (a CDA
        posted to /documents); the opener and every gateway's address for it."""
        if transport == "mllp":
            return load.mllp_sender(), self.mllp_targets
        return load.http_sender("/documents", "application/xml"), self.http_targets

    def tree(self) -> Tree:
        return Tree([g.proc.pid for g in (*self.gateways, *self.filers)])

    def backlog(self) -> int:
        """Messages still waiting in the patient-record queue (consumer behind the ACKs)."""
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            q = conn.channel().queue_declare(self.record_queue, passive=True)
            return q.method.message_count
        finally:
            conn.close()

    def tracking_dropped(self) -> int:
        """Tracking events the gateways dropped so far (their writer failed or fell behind).
        A gateway that drops them does less work than one that tracks every message, so a
        window where this grew is not comparable with one where it did not."""
        total = 0
        for gw in (*self.gateways, *self.filers):
            url = f"http://{gw.http[0]}:{gw.http[1]}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                text = answer.read().decode()
            for line in text.splitlines():
                if line.startswith("passerelle_tracking_events_dropped_total "):
                    total += int(float(line.split()[1]))
        return total

    @property
    def record_queue(self) -> str:
        return f"{self.prefix}.patient-record"

    def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> float | None:
        """Let the record consumer empty its queue; its rate in msg/s (None: nothing to do).

        What is left after ``timeout_s`` is purged so the next scenario starts clean.
        """
        start, left = time.monotonic(), self.backlog()
        if left == 0:
            return None
        first = left
        while left and time.monotonic() - start < timeout_s:
            time.sleep(0.5)
            left = self.backlog()
        rate = (first - left) / (time.monotonic() - start)
        if left:
            conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
            try:
                conn.channel().queue_purge(self.record_queue)
            finally:
                conn.close()
        return round(rate, 1)


def _env(
    ctx: Context, prefix: str, database_url: str, extra: dict[str, str], root: Path = ROOT
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_AMQP_URL=AMQP_URL,
        GATEWAY_AMQP_PREFIX=prefix,
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_KEYS_DIR=str(ctx.keys_dir),
        GATEWAY_DATA_DIR=str(ctx.workdir / prefix),
        GATEWAY_ROUTING_FILE=str(root / "routing.yaml"),
        GATEWAY_LOG_LEVEL="WARNING",  # an INFO line per message is not what is measured
    )
    env.update(extra)
    return env


def _start_one(
    ctx: Context, prefix: str, database_url: str, extra: dict[str, str], root: Path = ROOT
) -> Gateway:
    """``python -m gateway serve`` run from ``root``: the gateway package of that tree is the
    one imported (the current directory comes first on the module path)."""
    http, mllp = free_port(), free_port()
    env = _env(ctx, prefix, database_url, extra, root)
    env.update(GATEWAY_HTTP_ADDR=f"127.0.0.1:{http}", GATEWAY_MLLP_ADDR=f"127.0.0.1:{mllp}")
    log = ctx.workdir / f"{prefix}-{http}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gw = Gateway(proc, ("127.0.0.1", http), ("127.0.0.1", mllp), log)
    try:
        wait_listening(http, proc, START_TIMEOUT_S, log)
        _wait_ready(gw)
    except BaseException:
        stop(proc)
        raise
    return gw


def _wait_ready(gw: Gateway, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{gw.http[0]}:{gw.http[1]}/ready"
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextlib.contextmanager
def _database(ctx: Context, prefix: str) -> Iterator[str]:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception:  # no PostgreSQL here: SQLite in the work directory
        yield f"sqlite:///{ctx.workdir / (prefix + '.sqlite3')}"
        return
    name = prefix.replace("-", "_")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(PG_ADMIN_URL)
    try:
        yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_topology(prefix: str, routing: Path = ROOT / "routing.yaml") -> None:
    from gateway.broker.names import Names
    from gateway.broker.topology import delete, plan
    from gateway.routing import loader

    decls = plan(loader.load(routing), Names(prefix))
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        delete(conn.channel(), decls)
    finally:
        conn.close()


@contextlib.contextmanager
def running(
    ctx: Context, processes: int = 1, filers: int = 0, root: Path = ROOT, **extra: str
) -> Iterator[Stack]:
    """``processes`` gateways sharing one prefix and one record store, torn down after;
    ``filers`` more gateways (default record consumers, the rest of ``extra``) that are sent
    no traffic: with ``GATEWAY_RECORD_CONSUMERS=0`` in ``extra``, filing runs apart from intake.
    ``root``: the source tree the gateways run from (another revision's worktree: bench.harness.ab).
    """
    prefix = f"pbench-{uuid.uuid4().hex[:10]}"
    with _database(ctx, prefix) as database_url:
        stack = Stack(prefix, database_url)
        try:
            for _ in range(processes):
                stack.gateways.append(_start_one(ctx, prefix, database_url, extra, root))
            filing = {k: v for k, v in extra.items() if k != "GATEWAY_RECORD_CONSUMERS"}
            for _ in range(filers):
                stack.filers.append(_start_one(ctx, prefix, database_url, filing, root))
            yield stack
        finally:
            for gw in (*stack.gateways, *stack.filers):
                stop(gw.proc)
            delete_topology(prefix, root / "routing.yaml")
