"""HL7v2 over MLLP through the whole gateway: messages/s with the ACK sent after RabbitMQ's confirm.

A real gateway (Runtime) runs in a thread on ephemeral ports, under a unique AMQP prefix that
is deleted afterwards, with its records in SQLite under the bench workdir. Each client waits
for the ACK of one message before sending the next (what MLLP senders do), on 1 and on 16
connections. Messages: a CDA-carrying ORU^R01 from the ANS corpus (two CDA documents, 800 KB)
and a raw 30-OBX ORU^R01 converted to CR-BIO.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pika

from bench.common import ROOT, SHARED, Context
from gateway.adapters.hl7v2.mllp import FrameDecoder, frame
from gateway.broker.names import Names
from gateway.broker.topology import Declaration, delete, plan
from gateway.config import Settings
from gateway.routing import loader
from gateway.runtime import Runtime

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CORPUS_ORU = (
    SHARED / "corpus/hl7v2/TRANS_DOC_CDA_HL7V2_V2.0/ORU/Remplacement ORU"
    "/message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7"
)
BUDGET_S = 3.0
_counter = itertools.count()


def raw_oru(observations: int = 30) -> bytes:
    """A raw IHE LAB-3 ORU^R01 with a fresh MSH-10 (every message is a new report)."""
    n = next(_counter)
    obx = "".join(
        f"OBX|{i}|NM|2345-7^Glucose^LN||{5 + i / 10:.1f}|mmol/L^mmol/L^UCUM|4.1-5.9|N|||F\r"
        for i in range(1, observations + 1)
    )
    return (
        f"MSH|^~\\&|LAB-SIL|LABO|GW|DMP|20261101093000||ORU^R01^ORU_R01|B-{n}|P|2.5\r"
        "PID|||292059912304525^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
        "||BERNARD^Hélène||19920509|F" + "|" * 24 + "VALI\r"
        f"OBR|1||ORD-{n}^LABO|24323-8^Bilan^LN|||20261101071500"
        + "|" * 15
        + "20261101093000\r"
        + obx
    ).encode()


def exchange(sock: socket.socket, message: bytes) -> None:
    sock.sendall(frame(message))
    decoder = FrameDecoder()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("gateway closed the connection")
        frames = decoder.feed(data)
        if frames:
            if b"MSA|AA|" not in frames[0].payload:
                raise RuntimeError(frames[0].payload[:300].decode("utf-8", "replace"))
            return


def run_clients(address, make, connections: int) -> dict:
    stop = time.perf_counter() + BUDGET_S
    counts = [0] * connections

    def client(i: int) -> None:
        with socket.create_connection(address, timeout=30) as sock:
            while time.perf_counter() < stop:
                exchange(sock, make())
                counts[i] += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(client, range(connections)))
    elapsed = time.perf_counter() - start
    total = sum(counts)
    return {"msgs/s": round(total / elapsed, 1), "messages": total}


def rows(ctx: Context) -> dict[str, dict]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env(
        {
            "GATEWAY_HTTP_ADDR": "127.0.0.1:0",
            "GATEWAY_MLLP_ADDR": "127.0.0.1:0",
            "GATEWAY_AMQP_URL": AMQP_URL,
            "GATEWAY_AMQP_PREFIX": prefix,
            "GATEWAY_DATABASE_URL": f"sqlite:///{ctx.workdir / 'hl7v2-records.sqlite3'}",
            "GATEWAY_KEYS_DIR": str(ctx.keys_dir),
            "GATEWAY_ROUTING_FILE": str(ROOT / "routing.yaml"),
            "GATEWAY_LOG_LEVEL": "WARNING",
        },
        root=ROOT,
    )
    runtime = Runtime(settings)
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(runtime.run(on_ready=lambda _r: ready.set())), daemon=True
    )
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("gateway did not start")
    out: dict[str, dict] = {}
    try:
        cases = {"raw 30-OBX ORU^R01 → CR-BIO": raw_oru}
        if CORPUS_ORU.is_file():
            corpus = CORPUS_ORU.read_bytes()
            cases[f"corpus ORU^R01 with 2 CDA ({len(corpus) // 1024} KB)"] = lambda: corpus
        for label, make in cases.items():
            for connections in (1, 16):
                out[f"MLLP {label}, {connections} conn"] = run_clients(
                    runtime.mllp_address, make, connections
                )
    finally:
        runtime.request_stop()
        thread.join(30)
        _delete_topology(settings, prefix)
    return out


def _delete_topology(settings: Settings, prefix: str) -> None:
    names = Names(prefix)
    decls = plan(loader.load(settings.routing_file), names)
    decls += [
        Declaration("exchange", names.exchange, {}),
        Declaration("exchange", names.dead_letter_exchange, {}),
    ]
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        delete(conn.channel(), decls)
    finally:
        conn.close()
