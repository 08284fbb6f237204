"""End to end: a real `gateway serve`, RabbitMQ confirms, the record consumer running.

HL7v2 over MLLP (ACK awaited) with 1 and 16 connections, CDA CR-BIO over HTTP with 16
clients (built-in tier, then conformance-pack tier), the pipeline in worker processes
(GATEWAY_PIPELINE_WORKERS, default: one per core) against threads of one process, the bare
python-hl7 server as a ratio, 1 vs 2 gateway processes sharing one broker and one record
store, and the record consumers in the gateway's filing child (default) vs in its threads.
After the default configuration's 16-connection windows, the raw ORU over MLLP and the CR-BIO
over HTTP again, open loop at half the rate just measured (issue 9: p99 at half the
throughput): latency from each send's scheduled time, so queueing in the client counts
(bench.harness.load.pace).

Per scenario: throughput, latency percentiles, CPU ms per message of the gateway's process
tree (workers included; RabbitMQ and the clients excluded), the local RabbitMQ's and
PostgreSQL's CPU ms per message over the same window, peak RSS, the e2e CPU cost as a
multiple of the floors (bench.floors), the record consumer's backlog at the end of the window
and the rate at which it then files that backlog (no intake running; capped at
BENCH_DRAIN_SECONDS, the rest purged so scenarios stay independent).
Each scenario runs BENCH_SECONDS (default 10) after a 1 s warm-up (the pack tier after
PACK_SETTLE_S of unmeasured load as well: Saxon's collections after compiling).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

from bench import floors
from bench.common import ROOT, SHARED, Context
from bench.harness import load
from bench.harness.inputs import Input
from bench.harness.procs import Tree, free_port, stop, wait_listening
from bench.harness.stack import Stack, running

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
PACK = SHARED / "cisis"
CONNECTIONS = (1, 16)
PACED_SHARE = 0.5  # of the closed-loop msg/s
PACK_SETTLE_S = 8.0  # unmeasured load before the pack tier's window


def _measure(
    opener: load.Opener,
    targets: list[tuple[str, int]],
    messages: Iterator[bytes],
    connections: int,
    tree: Tree,
    rate: float | None = None,
) -> tuple[load.Run, dict]:
    """Closed loop, or open loop at ``rate`` msg/s when given."""
    if rate is None:
        driving = load.drive(opener, targets, messages, connections, SECONDS, on_window=tree.mark)
    else:
        driving = load.pace(
            opener, targets, messages, connections, SECONDS, rate=rate, on_window=tree.mark
        )
    run = asyncio.run(driving)
    row = run.figures()
    row["cpu ms/msg"] = round(tree.cpu_s / run.count * 1000, 3) if run.count else ""
    # The event-loop process alone: when it nears 1000 ms per second, it is the bottleneck.
    row["main cpu %"] = round(tree.roots_cpu_s / run.seconds / len(tree.roots) * 100)
    if run.count:
        row["broker+db cpu ms/msg"] = round(tree.services_cpu_s / run.count * 1000, 3)
    row["peak RSS MB"] = tree.peak_rss_mb()
    if run.refused:
        print(f"   refused, e.g.: {run.last_refusal}", flush=True)
    return run, row


def _with_floor_ratio(row: dict, floor: dict | None) -> dict:
    """e2e CPU over the floors' sum, and over the in-process pipeline plus publish: the
    second one is what transports, process hops and the record consumer add."""
    if floor and row.get("cpu ms/msg") and floor["sum ms"]:
        row["x floors"] = round(row["cpu ms/msg"] / floor["sum ms"], 2)
        row["x pipeline"] = round(
            row["cpu ms/msg"] / (floor["pipeline ms"] + floor["publish ms"]), 2
        )
    return row


Scenario = tuple[str, Input, str, int]  # name, input, "mllp" or "http", connections


def _scenario_row(
    stack: Stack,
    tree: Tree,
    scenario: Scenario,
    floor: dict,
    rate: float | None = None,
    settle_s: float = 0.0,
) -> dict:
    """One measured window; ``settle_s`` of the same load first, unmeasured and drained."""
    _, inp, transport, connections = scenario
    opener, targets = stack.sender(transport)
    messages = inp.stream
    if settle_s:
        asyncio.run(load.drive(opener, targets, messages, connections, settle_s))
        stack.drain()
    dropped = stack.tracking_dropped()
    _, row = _measure(opener, targets, messages, connections, tree, rate)
    if lost := stack.tracking_dropped() - dropped:
        row["tracking dropped"] = lost
    row["backlog"] = stack.backlog()
    row["filing msg/s"] = stack.drain() or ""
    return _with_floor_ratio(row, floor.get(inp.name))


def _gateway_rows(
    stack: Stack, scenarios: list[Scenario], floor: dict, label: str = "", settle_s: float = 0.0
) -> dict[str, dict]:
    out: dict[str, dict] = {}
    tree = stack.tree()
    for scenario in scenarios:
        name = f"{scenario[0]}{label}"
        out[name] = _scenario_row(stack, tree, scenario, floor, settle_s=settle_s)
        print(f"   {name}: {out[name]}", flush=True)
    return out


def _paced_rows(
    stack: Stack, scenarios: list[Scenario], floor: dict, closed: dict[str, dict]
) -> dict[str, dict]:
    """``scenarios`` again, open loop at PACED_SHARE of their ``closed`` msg/s."""
    out: dict[str, dict] = {}
    tree = stack.tree()
    for scenario in scenarios:
        name = f"{scenario[0]} paced {PACED_SHARE:.0%}"
        measured = closed.get(scenario[0], {}).get("msg/s")
        if not measured:
            out[name] = {"msg/s": "n/a"}
            continue
        out[name] = _scenario_row(stack, tree, scenario, floor, rate=measured * PACED_SHARE)
        print(f"   {name}: {out[name]}", flush=True)
    return out


def _variant(
    ctx: Context,
    label: str,
    scenarios: list,
    floor: dict,
    default: dict[str, dict],
    settle_s: float = 0.0,
    **how,
) -> dict[str, dict]:
    """``scenarios`` on a gateway started ``how``; "vs default": its msg/s over the default's."""
    with running(ctx, **how) as stack:
        rows = _gateway_rows(stack, scenarios, floor, label, settle_s)
    for name, row in rows.items():
        base = default.get(name.removesuffix(label), {})
        if base.get("msg/s") and row.get("msg/s"):
            row["vs default"] = round(row["msg/s"] / base["msg/s"], 2)
    return rows


def _pack_loads(ctx: Context) -> str | None:
    """None when the gateway builds more validation layers with the pack, else why not."""
    if not PACK.is_dir():
        return f"{PACK} absent"
    from gateway import bootstrap

    try:
        with_pack = bootstrap.load_checks(floors.settings(ctx, GATEWAY_CONFORMANCE_PACK=str(PACK)))
    except Exception as exc:  # the pack tier is not there yet, or refuses this pack
        return f"pack does not load: {type(exc).__name__}: {exc}"
    built_in = bootstrap.load_checks(floors.settings(ctx))
    layers = getattr(with_pack.cda_validator, "layers", ())
    if len(layers) <= len(getattr(built_in.cda_validator, "layers", ())):
        return "GATEWAY_CONFORMANCE_PACK adds no validation layer yet"
    return None


def _bare_rows(ctx: Context, ins: list[Input], gateway: dict[str, dict]) -> dict[str, dict]:
    port = free_port()
    log = ctx.workdir / "bare-mllp.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.harness.bare_mllp", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    rows: dict[str, dict] = {}
    try:
        wait_listening(port, proc, 30, log)
        tree = Tree([proc.pid])
        for inp in ins:
            for n in CONNECTIONS:
                name = f"MLLP {inp.name} x{n}"
                _, row = _measure(
                    load.mllp_sender(), [("127.0.0.1", port)], inp.variants(), n, tree
                )
                mine = gateway.get(name, {})
                if mine.get("msg/s") and row["msg/s"]:
                    row["bare/gateway msg/s"] = round(row["msg/s"] / mine["msg/s"], 1)
                if mine.get("cpu ms/msg") and row["cpu ms/msg"]:
                    row["gateway/bare cpu"] = round(mine["cpu ms/msg"] / row["cpu ms/msg"], 1)
                rows[f"bare python-hl7 {name}"] = row
                print(f"   bare {name}: {row}", flush=True)
    finally:
        stop(proc)
    return rows


def rows(ctx: Context) -> dict[str, dict]:
    prep = floors.prepare(ctx)
    floor = floors.compute(ctx)
    raw, oru_cda, cda = prep.inputs
    mllp = [(f"MLLP {i.name} x{n}", i, "mllp", n) for i in (raw, oru_cda) for n in CONNECTIONS]
    http = [(f"HTTP {cda.name} x16", cda, "http", 16)]
    result: dict[str, dict] = {}

    twice = [mllp[1], http[0]]  # raw ORU over MLLP and CR-BIO over HTTP, 16 connections

    with running(ctx) as stack:
        result.update(_gateway_rows(stack, mllp + http, floor, " built-in"))
        gateway = {k.removesuffix(" built-in"): v for k, v in result.items()}
        result.update(_paced_rows(stack, twice, floor, gateway))

    # The same loads with the pipeline in threads of the one process (GIL: one core), then
    # with two gateway processes sharing the broker and the record store.
    result.update(_variant(ctx, " threads", twice, floor, gateway, GATEWAY_PIPELINE_WORKERS="0"))

    why_not = _pack_loads(ctx)
    if why_not is None:
        # PACK_SETTLE_S first: each worker's first tens of validations after compiling carry
        # Saxon's collections (docs/performance.md), a start-up cost, not the steady rate.
        result.update(
            _variant(
                ctx,
                " pack",
                http,
                {},
                gateway,
                settle_s=PACK_SETTLE_S,
                GATEWAY_CONFORMANCE_PACK=str(PACK),
            )
        )
    else:
        print(f"   pack tier skipped: {why_not}", flush=True)
        result[f"HTTP {cda.name} x16 pack"] = {"msg/s": "n/a"}

    result.update(_variant(ctx, " 2 processes", twice, floor, gateway, processes=2))
    # The record consumers in threads of the gateway's process instead of its filing child:
    # intake and filing then share one GIL (gateway/filing.py).
    result.update(
        _variant(ctx, " filing threads", twice, floor, gateway, GATEWAY_FILING_PROCESS="0")
    )

    result.update(_bare_rows(ctx, [raw, oru_cda], gateway))
    return result
