"""Soak: one gateway under a moderate paced load for a while; does its memory stay flat?

The raw 30-OBX ORU^R01 over MLLP at BENCH_SOAK_RATE msg/s (default 20; open loop, 16
connections, bench.harness.load.pace) for BENCH_SOAK_SECONDS (default 60) after a 10 s
warm-up, record consumer running. Every BENCH_SOAK_SAMPLE_SECONDS (default 5) the RSS of
every process of the gateway's tree and the record consumer's backlog are sampled.
Issue 9's 10-minute soak: `BENCH_SOAK_SECONDS=600 python -m bench soak`.

Reported: latency and achieved rate as in e2e's paced rows, the tree's RSS at the start and
the end of the window, its least-squares slope in MB/min over all samples, the highest
sample, the sum of VmHWM, and the backlog at the end, at its highest and its slope per
minute (a consumer that keeps up stays near 0). The samples go to bench/results.json.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

from bench.common import Context
from bench.harness import inputs, load
from bench.harness.procs import Tree, slope
from bench.harness.stack import running

SECONDS = float(os.environ.get("BENCH_SOAK_SECONDS", "60"))
RATE = float(os.environ.get("BENCH_SOAK_RATE", "20"))
EVERY_S = float(os.environ.get("BENCH_SOAK_SAMPLE_SECONDS", "5"))
WARMUP_S = 10.0  # first-use caches and pools fill before the first sample
CONNECTIONS = 16
PROGRESS_S = 60.0


class Sampler:
    """Samples in a thread, so the client's event loop is not held while /proc and the
    broker are read (what it delays counts as latency)."""

    def __init__(self, tree: Tree, backlog: Callable[[], int], every_s: float) -> None:
        self._tree, self._backlog, self._every_s = tree, backlog, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self.samples: list[dict] = []
        self._shown = 0.0  # when progress was last printed
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask for a last sample; `join` waits for it."""
        self._stop.set()

    def join(self) -> list[dict]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.samples

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # raised again by join, in the section's thread
            self._error = exc

    def _loop(self) -> None:
        started = time.perf_counter()
        for due in load.schedule(started + self._every_s, 1 / self._every_s):
            self._take(time.perf_counter() - started)
            if self._stop.wait(max(0.0, due - time.perf_counter())):
                self._take(time.perf_counter() - started)
                return

    def _take(self, elapsed_s: float) -> None:
        sample = self._sample(elapsed_s)
        self.samples.append(sample)
        if sample["s"] >= self._shown + PROGRESS_S:
            self._shown = sample["s"]
            line = f"RSS {sample['rss MB']} MB, backlog {sample['backlog']}"
            print(f"   soak {sample['s']:.0f} s: {line}", flush=True)

    def _sample(self, elapsed_s: float) -> dict:
        by_pid = self._tree.rss_mb()
        return {
            "s": round(elapsed_s, 1),
            "rss MB": round(sum(by_pid.values()), 1),
            "backlog": self._backlog(),
            "rss MB by pid": {str(pid): round(mb, 1) for pid, mb in by_pid.items()},
        }


def _per_min(samples: list[dict], value: Callable[[dict], float | None]) -> float | str:
    """Trend per minute fitted over the samples where ``value`` has one."""
    points = [(s["s"] / 60, v) for s in samples if (v := value(s)) is not None]
    fitted = slope(points)
    return "" if fitted is None else round(fitted, 2)


def sample_figures(samples: list[dict]) -> dict:
    """Start, end, trend and highest of the sampled RSS (the tree's, and the trend of each
    process: which one grows); last, highest and trend of the backlog (a consumer that
    keeps up: near 0 and flat; one that does not: growing by the rate it is short of)."""
    pids = dict.fromkeys(pid for s in samples for pid in s.get("rss MB by pid", {}))
    return {
        "RSS start MB": samples[0]["rss MB"],
        "RSS end MB": samples[-1]["rss MB"],
        "RSS MB/min": _per_min(samples, lambda s: s["rss MB"]),
        "RSS max MB": max(s["rss MB"] for s in samples),
        "backlog": samples[-1]["backlog"],
        "backlog max": max(s["backlog"] for s in samples),
        "backlog/min": _per_min(samples, lambda s: s["backlog"]),
        "RSS MB/min by pid": {
            pid: _per_min(samples, lambda s, pid=pid: s["rss MB by pid"].get(pid)) for pid in pids
        },
    }


def rows(ctx: Context) -> dict[str, dict]:
    raw = inputs.oru_raw()
    with running(ctx) as stack:
        tree = stack.tree()
        sampler = Sampler(tree, stack.backlog, EVERY_S)

        def on_window(event: str) -> None:
            tree.mark(event)
            (sampler.start if event == "start" else sampler.stop)()

        run = asyncio.run(
            load.pace(
                load.mllp_sender(),
                stack.mllp_targets,
                raw.variants(),
                CONNECTIONS,
                SECONDS,
                rate=RATE,
                warmup_s=WARMUP_S,
                on_window=on_window,
            )
        )
        samples = sampler.join()
        row = run.figures()
        row["cpu ms/msg"] = round(tree.cpu_s / run.count * 1000, 3) if run.count else ""
        row["soak s"] = round(run.seconds)
        row.update(sample_figures(samples))
        row["peak RSS MB"] = tree.peak_rss_mb()
        row["rss samples"] = samples
    name = f"soak MLLP {raw.name} x{CONNECTIONS}"
    print(f"   {name}: { {k: v for k, v in row.items() if k != 'rss samples'} }", flush=True)
    return {name: row}
