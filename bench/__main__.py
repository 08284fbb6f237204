"""`python -m bench`: throughput figures measured on this machine, one section per area.

Each section module exposes ``rows(context) -> dict[name, figures]``; this runner prints them
as one table and writes bench/results.json (figures that are lists or dicts, such as a
soak's samples, go to the file only), then issue 9's targets judged on the run's rows
(bench.harness.targets). Sections that need RabbitMQ or PostgreSQL talk to
the real servers on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, Context
from bench.harness import targets

# Every module of this package but the runner and its helpers is a section, in name order.
SECTIONS = sorted(
    f"bench.{p.stem}"
    for p in Path(__file__).parent.glob("*.py")
    if not p.stem.startswith("_") and p.stem != "common"
)


def main(argv: list[str]) -> int:
    wanted = [s for s in SECTIONS if not argv or any(a in s for a in argv)]
    context = Context(workdir=Path(tempfile.mkdtemp(prefix="passerelle-bench-")))
    results: dict[str, dict] = {}
    for name in wanted:
        section = importlib.import_module(name)
        print(f"== {name.removeprefix('bench.')}", flush=True)
        rows = section.rows(context)
        print_rows(rows)
        results.update(rows)
    judged = targets.verdicts(results)
    if judged:
        print("== targets (issue 9) judged on this run", flush=True)
        print_rows(judged)
    out = ROOT / "bench" / "results.json"
    out.write_text(
        json.dumps({"machine": platform.platform(), "rows": results, "targets": judged}, indent=2)
    )
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0


def print_rows(rows: dict[str, dict]) -> None:
    if not rows:
        return
    width = max(map(len, rows))
    keys = list(dict.fromkeys(k for r in rows.values() for k, v in r.items() if _column(v)))
    print(f"{'':{width}}  " + "  ".join(f"{k:>12}" for k in keys))
    for name, r in rows.items():
        print(f"{name:{width}}  " + "  ".join(f"{r.get(k, ''):>12}" for k in keys), flush=True)


def _column(value: object) -> bool:
    return not isinstance(value, list | dict)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
