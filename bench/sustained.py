"""Sustained: the highest rate one gateway carries with its record consumer keeping up.

The closed-loop rows of bench/e2e.py measure how fast intake answers while the record queue
grows behind it; what a machine carries for good is lower. Here the raw 30-OBX ORU^R01 over
MLLP and the CR-BIO over HTTP are sent open loop (bench.harness.load.pace, 16 connections) at
rising rates on one running gateway: from BENCH_SUSTAINED_START msg/s (default 20), × 1.25 per
step, BENCH_SUSTAINED_SECONDS each (default 15, after the pace's 1 s warm-up). A step holds when
nothing was refused, no send waited for a free connection (`late`), the p99 stayed within
P99_LIMIT_MS, the record queue's backlog at the end is at most one second of that rate and
no tracking event was dropped: intake answered in time, filing and tracking kept up. A step
that fails is run once more, so one stall (a checkpoint, a GC) does not end the climb; it
fails when it fails twice. The row
gives the last rate that held, its figures, and the first that did not and why. The backlog
is drained between steps.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

from bench import floors
from bench.common import Context
from bench.harness import load
from bench.harness.inputs import Input
from bench.harness.procs import Tree
from bench.harness.stack import Stack, running

SECONDS = float(os.environ.get("BENCH_SUSTAINED_SECONDS", "15"))
START = float(os.environ.get("BENCH_SUSTAINED_START", "20"))
FACTOR = 1.25
MAX_STEPS = 12
P99_LIMIT_MS = 500.0
CONNECTIONS = 16


def rates(start: float = START, factor: float = FACTOR, steps: int = MAX_STEPS) -> Iterator[float]:
    for n in range(steps):
        yield round(start * factor**n, 1)


def why_not(figures: dict, backlog: int, rate: float, tracking_dropped: int = 0) -> str | None:
    """None when a step held; else the first reason it did not."""
    if figures.get("refused"):
        return f"{figures['refused']} refused"
    if figures.get("late"):
        return f"{figures['late']} sends waited for a free connection"
    p99 = figures.get("p99 ms")
    if isinstance(p99, int | float) and p99 > P99_LIMIT_MS:
        return f"p99 {p99} ms > {P99_LIMIT_MS:g}"
    if backlog > rate:
        return f"record backlog {backlog} after the window (filing behind)"
    if tracking_dropped:  # what it carried, it did not all track
        return f"{tracking_dropped} tracking events dropped"
    return None


def _climb(stack: Stack, tree: Tree, name: str, inp: Input, transport: str) -> dict:
    opener, targets = stack.sender(transport)
    row: dict = {"sustained msg/s": 0.0}
    for rate in rates():
        for attempt in (1, 2):
            dropped = stack.tracking_dropped()
            run = asyncio.run(
                load.pace(
                    opener, targets, inp.stream, CONNECTIONS, SECONDS, rate=rate,
                    on_window=tree.mark,
                )
            )  # fmt: skip
            figures = run.figures()
            cpu = round(tree.cpu_s / run.count * 1000, 3) if run.count else ""
            backlog = stack.backlog()
            reason = why_not(figures, backlog, rate, stack.tracking_dropped() - dropped)
            print(f"   {name} at {rate} msg/s (run {attempt}): {figures}, backlog {backlog}: "
                  f"{reason or 'held'}", flush=True)  # fmt: skip
            stack.drain()
            if reason is None:
                break
        if reason is not None:
            row.update({"failed at msg/s": rate, "why": reason})
            return row
        row = {
            "sustained msg/s": rate,
            "p50 ms": figures["p50 ms"],
            "p99 ms": figures["p99 ms"],
            "cpu ms/msg": cpu,
            "backlog": backlog,
        }
    row["why"] = f"held up to the last step ({MAX_STEPS} steps)"
    return row


def rows(ctx: Context) -> dict[str, dict]:
    raw, _oru_cda, cda = floors.prepare(ctx).inputs
    out: dict[str, dict] = {}
    with running(ctx) as stack:
        tree = stack.tree()
        for name, inp, transport in (
            (f"sustained MLLP {raw.name} x{CONNECTIONS}", raw, "mllp"),
            (f"sustained HTTP {cda.name} x{CONNECTIONS}", cda, "http"),
        ):
            out[name] = _climb(stack, tree, name, inp, transport)
            print(f"   {name}: {out[name]}", flush=True)
    return out
