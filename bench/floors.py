"""Floors: what each step costs alone, on the very inputs the end-to-end bench sends.

parse-only, validate-only, sign-only and publish-with-confirm-only, in CPU milliseconds per
message in this process, and their sum. End to end a message costs at least that sum; the
e2e section reports its measured cost as a ratio to it. The steps are called through the
same objects the gateway builds (bootstrap.load_tools), so they follow the product as it
changes.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass

from bench.common import ROOT, Context
from bench.harness import inputs
from bench.harness.stack import AMQP_URL, delete_topology
from gateway import bootstrap
from gateway.adapters import detect
from gateway.adapters.cda import parser as cda_parser
from gateway.adapters.hl7v2 import parser as hl7_parser
from gateway.broker import topology
from gateway.broker.message import DocumentMessage, encode, headers
from gateway.broker.names import Names
from gateway.broker.publisher import OutboundMessage, Publisher
from gateway.config import Settings
from gateway.outcome import Accepted
from gateway.pipeline import Tools, ingest
from gateway.submission import Submission
from gateway.validators import hl7v2_structure

BUDGET_S = 0.6
PUBLISH_IN_FLIGHT = 16


def cpu_ms(fn: Callable[[], object], budget_s: float = BUDGET_S) -> float:
    """CPU milliseconds per call of ``fn`` (this process, every thread), over ``budget_s``."""
    fn()
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < budget_s:
        fn()
        n += 1
    return (time.process_time() - cpu) / n * 1000


@dataclass
class Prepared:
    tools: Tools
    inputs: list[inputs.Input]


def settings(ctx: Context, **env: str) -> Settings:
    return Settings.from_env(
        {
            "GATEWAY_KEYS_DIR": str(ctx.keys_dir),
            "GATEWAY_DATA_DIR": str(ctx.workdir),
            "GATEWAY_ROUTING_FILE": str(ROOT / "routing.yaml"),
            **env,
        },
        root=ROOT,
    )


def prepare(ctx: Context) -> Prepared:
    """The gateway's tools (built-in tier) and the inputs it accepts today; once per run."""
    if "prepared" not in ctx.cache:
        tools = bootstrap.load_tools(settings(ctx))

        def accepts(raw: bytes) -> bool:
            return isinstance(ingest(Submission(raw=raw, transport="bench"), tools), Accepted)

        chosen = [inputs.oru_raw(), inputs.oru_with_cda(accepts), inputs.crbio_cda(accepts)]
        ctx.cache["prepared"] = Prepared(tools, chosen)
    return ctx.cache["prepared"]


def _parse(raw: bytes):
    """The format parsers alone: ER7 tokenizing (+ base64 and XML of a carried CDA), XML."""
    if detect(raw) == "cda":
        return cda_parser.parse(raw)[0], None
    msg, _ = hl7_parser.parse(raw)
    for obx in msg.all("OBX"):
        parts = msg.components(obx.field(5))
        if obx.field(2) == "ED" and len(parts) > 4 and parts[2].upper() == "XML":
            return cda_parser.parse(base64.b64decode(parts[4]))[0], msg
    return None, msg


def _validate(tools: Tools, raw: bytes) -> Callable[[], object]:
    cda, msg = _parse(raw)

    def run() -> None:
        if msg is not None:
            hl7v2_structure.acceptance(msg)
            hl7v2_structure.validate(msg)
        if cda is not None:
            tools.checks.cda_validator.validate(cda)

    return run


class _Publishing:
    """Publish-with-confirm alone: the gateway's Publisher, PUBLISH_IN_FLIGHT in flight."""

    def __init__(self, tools: Tools) -> None:
        self.names = Names(f"pbench-{uuid.uuid4().hex[:10]}")
        self.routing = tools.routing
        self.seal_key = tools.seal_key
        self.publisher = Publisher(AMQP_URL, topology.plan(tools.routing, self.names))

    def __enter__(self) -> _Publishing:
        self.publisher.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.publisher.stop()
        delete_topology(self.names.prefix)

    def cost(self, accepted: Accepted) -> float:
        env = accepted.envelope
        document = DocumentMessage(env, accepted.payload, accepted.attachments)
        batch = [
            OutboundMessage(
                self.names.exchange,
                dest,
                encode(
                    document,
                    self.routing.format_of(dest),
                    seal_key=self.seal_key,
                    routed=accepted.destinations,
                ),
                env.document_id,
                env.trace_id,
                headers=headers(env),
            )
            for dest in accepted.destinations
        ]

        def burst() -> None:
            futures = [self.publisher.publish(batch) for _ in range(PUBLISH_IN_FLIGHT)]
            wait(futures, timeout=30)
            for f in futures:
                f.result()

        return cpu_ms(burst, budget_s=BUDGET_S) / PUBLISH_IN_FLIGHT


def compute(ctx: Context) -> dict[str, dict]:
    """Per input: floor figures in CPU ms per message; cached for the e2e ratio."""
    if "floors" in ctx.cache:
        return ctx.cache["floors"]
    prep = prepare(ctx)
    result: dict[str, dict] = {}
    with _Publishing(prep.tools) as publishing:
        for inp in prep.inputs:
            raw = inp.sample
            accepted = ingest(Submission(raw=raw, transport="bench"), prep.tools)
            assert isinstance(accepted, Accepted), inp.name
            signed = accepted.envelope.signature is not None
            row = {
                "parse ms": cpu_ms(lambda raw=raw: _parse(raw)),
                "validate ms": cpu_ms(_validate(prep.tools, raw)),
                "sign ms": (
                    cpu_ms(lambda p=accepted.payload: prep.tools.signer.sign(p)) if signed else 0.0
                ),
                "publish ms": publishing.cost(accepted),
            }
            row["sum ms"] = sum(row.values())
            row["pipeline ms"] = cpu_ms(
                lambda raw=raw: ingest(Submission(raw=raw, transport="bench"), prep.tools)
            )
            result[inp.name] = {k: round(v, 3) for k, v in row.items()}
    ctx.cache["floors"] = result
    return result


def rows(ctx: Context) -> dict[str, dict]:
    prep = prepare(ctx)
    names = {
        i.name: f"{i.name} ({i.size // 1024 or i.size} {'KB' if i.size >= 1024 else 'B'})"
        for i in prep.inputs
    }
    return {f"floor {names[k]}": v for k, v in compute(ctx).items()}
