"""Tools that inflict faults on the real services, and a sender that keeps its promises.

Faults are aimed at this test's own resources only: the RabbitMQ connections of one process
(found by their client ports), one throwaway PostgreSQL database, one subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from gateway.adapters.hl7v2.intake import message_document_id
from gateway.adapters.hl7v2.mllp import FrameDecoder, frame
from gateway.adapters.hl7v2.parser import parse
from tests.conftest import FIXTURES, ROOT
from tests.waiting import wait_for  # noqa: F401 (re-exported)

ORU_INS = "292059912304525"
ORU_FIXTURE = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
MLLP_SENDER = "mllp:127.0.0.1"
AMQP_PORT = 5672


def oru(control_id: str) -> bytes:
    """The fixture ORU^R01 (a valid lab result) with ``control_id`` as MSH-10, so as its own
    document id, and as its order number, so as its own setId (one order with one report time
    under two document ids would be a conflicting version, parked by the record store)."""
    return ORU_FIXTURE.replace(b"|LAB-000001|", f"|{control_id}|".encode(), 1).replace(
        b"LAB-4242", f"ORD-{control_id}".encode()
    )


def document_id(control_id: str) -> str:
    msg, _ = parse(oru(control_id))
    return message_document_id(MLLP_SENDER, msg)


class MllpSender:
    """One MLLP connection; ``send`` returns MSA-1 (AA, AE, AR…) or None when no ACK came."""

    def __init__(
        self, address: tuple[str, int], timeout: float = 15.0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.tls = tls
        self._sock: socket.socket | None = None
        self._decoder = FrameDecoder()

    def send(self, message: bytes) -> str | None:
        try:
            if self._sock is None:
                sock = socket.create_connection(self.address, timeout=self.timeout)
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.address[0])
                self._sock = sock
                self._decoder = FrameDecoder()
            self._sock.sendall(frame(message))
            while True:
                data = self._sock.recv(65536)
                if not data:
                    raise ConnectionError("closed before the ACK")
                frames = self._decoder.feed(data)
                if frames:
                    ack, _ = parse(frames[0].payload)
                    return ack.value("MSA-1") if ack else None
        except OSError:
            self.close()
            return None

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def send_until_accepted(
    sender: MllpSender, control_id: str, deadline: float, on_reply: Callable[[str | None], None]
) -> None:
    """What a well-behaved sender does: resend the same message until it is accepted."""
    pause = 0.05
    while time.monotonic() < deadline:
        code = sender.send(oru(control_id))
        on_reply(code)
        if code == "AA":
            return
        assert code in (None, "AR"), f"{control_id}: unexpected ACK {code}"
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    raise AssertionError(f"{control_id} never accepted")


# -- RabbitMQ ------------------------------------------------------------------------------


def _amqp_client_ports(pid: int) -> set[int]:
    """Local ports of ``pid``'s TCP connections to RabbitMQ, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                if inode in inodes and state == "01" and int(remote.split(":")[1], 16) == AMQP_PORT:
                    ports.add(int(local.split(":")[1], 16))
    return ports


def amqp_connections(pid: int) -> list[str]:
    """The broker's ids of process ``pid``'s connections (look them up before the fault:
    rabbitmqctl is slow, the fault itself should be quick)."""
    ports = _amqp_client_ports(pid)
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "peer_port", "-q", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    found = []
    for line in listing.splitlines():
        m = re.match(r"\s*(<[^>]+>)\s+(\d+)", line)
        if m and int(m.group(2)) in ports:
            found.append(m.group(1))
    return found


def close_connections(broker_ids: list[str]) -> None:
    """Have the broker close these connections, all at once."""
    procs = [
        subprocess.Popen(
            ["rabbitmqctl", "close_connection", cid, "reliability test"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for cid in broker_ids
    ]
    for proc in procs:
        proc.wait(30)


# -- PostgreSQL ----------------------------------------------------------------------------


@contextlib.contextmanager
def database_outage(admin_url: str, database: str) -> Iterator[None]:
    """``database`` refuses connections and loses its sessions, until the block exits."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


def filed_ids(pg_url: str) -> list[str]:
    with psycopg.connect(pg_url) as conn:
        return [r[0] for r in conn.execute("SELECT document_id FROM documents")]


# -- processes -----------------------------------------------------------------------------


class Process:
    """A child Python process; its JSON log lines (stderr) are read as they come, so the pipe
    never fills and blocks it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env, "GATEWAY_LOG_FORMAT": "json"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def wait_event(self, name: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((e for e in self.events if e.get("event") == name), None)
            if found is not None:
                return found
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"process exited ({self.proc.returncode}) before {name}")
            time.sleep(0.05)
        raise AssertionError(f"no {name} event within {timeout}s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
