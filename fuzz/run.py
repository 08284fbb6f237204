"""Run every fuzz target for a bounded time: `make fuzz` (FUZZ_SECONDS each, default 30).

    python fuzz/run.py [--seconds N] [TARGET ...]

Each target starts from a scratch corpus seeded with the test fixtures (the repository is
never written to); a crash leaves its input under var/fuzz/ and makes the run fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURES = ROOT / "tests" / "fixtures"
TARGETS = {
    "mllp_framer": ["hl7v2/*.hl7", "hostile/*.hl7"],
    "cda_parser": ["cda/*.xml", "hostile/*.xml"],
}


def run(target: str, seconds: int) -> int:
    artifacts = ROOT / "var" / "fuzz"
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as corpus:
        for pattern in TARGETS[target]:
            for seed in FIXTURES.glob(pattern):
                shutil.copy(seed, corpus)
        cmd = [
            sys.executable,
            str(HERE / f"{target}.py"),
            corpus,
            f"-max_total_time={seconds}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=65536",
            f"-artifact_prefix={artifacts}/{target}-",
            "-print_final_stats=1",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        stats = [
            ln
            for ln in result.stderr.splitlines()
            if ln.startswith("stat::number_of_executed_units")
        ]
        print(f"{target}: exit {result.returncode} {' '.join(stats)}")
        if result.returncode != 0:
            print(result.stderr[-4000:], file=sys.stderr)
        return result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "30")))
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    args = parser.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}")
    failed = [t for t in args.targets or TARGETS if run(t, args.seconds) != 0]
    if failed:
        print(f"crashes in: {', '.join(failed)} (inputs under var/fuzz/)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
