"""`python -m bench.harness.ab A B`: what a change costs per message, two gateways side by side.

This machine's speed drifts by up to 2x within an evening, so two configurations measured one
after the other differ by more than most changes do. Here both arms run at once, each a whole
stack of its own (gateway, pipeline workers, filing child, AMQP prefix, PostgreSQL database),
both paced at the same rate from one stream of unique messages: both see the same phase of the
machine and the same contention. Per round and arm: CPU per message of the gateway's process
tree, and of the arm's own PostgreSQL backends (found by database name), counted from the start
of the window until its record queue is drained, so filing counts whole; RabbitMQ is shared and
given for both arms together. Rounds start fresh stacks and alternate which arm starts first.
Then, per metric, B/A per round and their mean: a same-config A/A run gave per-round
differences within 1 % (docs/performance.md, "Paired A/B").

An arm is ``.`` (this working tree) or a git revision (checked out in a temporary worktree and
run from there, with this checkout's venv and bench inputs), optionally followed by
``+KEY=VALUE,KEY=VALUE``: environment for its gateways (e.g. ``.+GATEWAY_PIPELINE_WORKERS=1``).

    python -m bench.harness.ab [--input raw|oru-cda|crbio] [--rate MSG/S] [--seconds S]
                               [--rounds N] A B

The rate is per arm; keep both arms together below what the machine carries (paced, not
saturated: CPU per message is what is compared, not throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import floors
from bench.common import ROOT, Context
from bench.harness import load
from bench.harness.inputs import Input
from bench.harness.procs import cpu_seconds, services_cpu, tree
from bench.harness.stack import PG_ADMIN_URL, Stack, running

WARMUP_S = 3.0  # closed loop per arm before each round's window, then drained
# by name: its place in bench.floors.prepare's inputs, and how it is sent
INPUTS = {"raw": (0, "mllp"), "oru-cda": (1, "mllp"), "crbio": (2, "http")}
METRICS = ("gateway ms/msg", "postgres ms/msg", "p50 ms", "p99 ms")


@dataclass(frozen=True)
class Arm:
    label: str
    revision: str | None  # None: this working tree
    env: dict[str, str] = field(default_factory=dict)


def parse_arm(spec: str) -> Arm:
    """``.``, ``REV``, either followed by ``+KEY=VALUE,…``."""
    where, _, settings = spec.partition("+")
    env: dict[str, str] = {}
    for item in filter(None, settings.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{spec!r}: environment must be KEY=VALUE, got {item!r}")
        env[key] = value
    if not where:
        raise ValueError(f"{spec!r}: name a revision or '.' before '+'")
    return Arm(spec, None if where == "." else where, env)


def ratios(a: list[dict], b: list[dict]) -> dict[str, dict]:
    """Per metric: B/A of each round (rounds paired by index), their mean, min and max."""
    out: dict[str, dict] = {}
    for metric in METRICS:
        pairs = [
            rb[metric] / ra[metric]
            for ra, rb in zip(a, b, strict=True)
            if isinstance(ra.get(metric), int | float)
            and isinstance(rb.get(metric), int | float)
            and ra[metric]
        ]
        if pairs:
            out[metric] = {
                "B/A mean": round(statistics.fmean(pairs), 3),
                "min": round(min(pairs), 3),
                "max": round(max(pairs), 3),
            }
    return out


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds([pid]) for pid in pids}


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings; a process that appeared in between counts whole."""
    return sum(s - before.get(pid, 0.0) for pid, s in after.items())


def _backends(database: str) -> list[int]:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))
        return [pid for (pid,) in rows]


def _beam_seconds() -> float:
    """RabbitMQ's CPU so far (its Erlang VM)."""
    return sum(services_cpu(("beam.smp",)).values())


@contextlib.contextmanager
def _checkout(arm: Arm) -> Iterator[Path]:
    """The source tree ``arm`` runs from: this one, or a temporary worktree of its revision."""
    if arm.revision is None:
        yield ROOT
        return
    where = Path(tempfile.mkdtemp(prefix="passerelle-ab-")) / "tree"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(where), arm.revision], check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(where)], check=False)
        shutil.rmtree(where.parent, ignore_errors=True)


class _Side:
    """One arm's running stack within a round, and its CPU readings."""

    def __init__(self, stack: Stack, inp: Input, transport: str) -> None:
        self.stack, self.inp = stack, inp
        self.database = stack.database_url.rsplit("/", 1)[1]
        self.opener, self.targets = stack.sender(transport)

    def warm_up(self) -> None:
        asyncio.run(load.drive(self.opener, self.targets, self.inp.stream, 8, WARMUP_S))
        self.stack.drain()

    def read(self) -> tuple[dict[int, float], dict[int, float]]:
        gateway = tree(self.stack.gateways[0].proc.pid)
        return _cpu_by_pid(gateway), _cpu_by_pid(_backends(self.database))

    def pace(self, rate: float, seconds: float):
        return load.pace(self.opener, self.targets, self.inp.stream, 16, seconds, rate=rate,
                         warmup_s=0)  # fmt: skip


def _round(ctx: Context, arms: list[tuple[Arm, Path]], inp: Input, transport: str, rate: float,
           seconds: float) -> tuple[list[dict], float]:  # fmt: skip
    with contextlib.ExitStack() as stacks:
        sides = [
            _Side(stacks.enter_context(running(ctx, root=root, **arm.env)), inp, transport)
            for arm, root in arms
        ]
        for side in sides:
            side.warm_up()
        before = [side.read() for side in sides]
        beam = _beam_seconds()

        async def together():
            return await asyncio.gather(*(side.pace(rate, seconds) for side in sides))

        runs = asyncio.run(together())
        for side in sides:
            side.stack.drain()
        after = [side.read() for side in sides]
        beam = _beam_seconds() - beam
        rows = []
        for run, (g0, p0), (g1, p1) in zip(runs, before, after, strict=True):
            n = run.count or 1
            figures = run.figures()
            rows.append(
                {
                    "gateway ms/msg": round(_spent(g0, g1) / n * 1000, 3),
                    "postgres ms/msg": round(_spent(p0, p1) / n * 1000, 3),
                    "p50 ms": figures["p50 ms"],
                    "p99 ms": figures["p99 ms"],
                    "late": figures.get("late", 0),
                    "refused": run.refused,
                    "messages": run.count,
                }
            )
        total = sum(run.count for run in runs) or 1
        return rows, round(beam / total * 1000, 3)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.harness.ab", description=__doc__)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--input", choices=sorted(INPUTS), default="raw")
    parser.add_argument("--rate", type=float, default=40.0, help="msg/s per arm (default 40)")
    parser.add_argument("--seconds", type=float, default=15.0, help="window per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        arm_a, arm_b = parse_arm(args.a), parse_arm(args.b)
    except ValueError as exc:
        parser.error(str(exc))
    ctx = Context(workdir=Path(tempfile.mkdtemp(prefix="passerelle-ab-")))
    position, transport = INPUTS[args.input]
    inp = floors.prepare(ctx).inputs[position]
    print(f"A = {arm_a.label}\nB = {arm_b.label}\n{inp.name}, {args.rate:g} msg/s per arm, "
          f"{args.seconds:g} s x {args.rounds} rounds", flush=True)  # fmt: skip
    results: dict[str, list[dict]] = {"A": [], "B": []}
    with _checkout(arm_a) as root_a, _checkout(arm_b) as root_b:
        named = [("A", (arm_a, root_a)), ("B", (arm_b, root_b))]
        for n in range(args.rounds):
            order = named if n % 2 == 0 else named[::-1]
            rows, beam = _round(
                ctx, [arm for _, arm in order], inp, transport, args.rate, args.seconds
            )
            for (name, _), row in zip(order, rows, strict=True):
                results[name].append(row)
            print(f"round {n + 1}: A {results['A'][-1]}\n         B {results['B'][-1]}\n"
                  f"         RabbitMQ (both arms) {beam} ms/msg", flush=True)  # fmt: skip
    print("\nB/A per round (paired):")
    for metric, figures in ratios(results["A"], results["B"]).items():
        print(f"  {metric:16} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
