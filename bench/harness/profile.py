"""`python -m bench.harness.profile [mllp|http] [SECONDS] [gil] [intake] [pack]`: where a
loaded gateway spends CPU (`intake`: with no record consumer in it; `pack`: with the
conformance-pack tier).

Starts a real gateway (bench.stack), drives 16 connections (raw ORU^R01 over MLLP, or the
CR-BIO CDA over HTTP) and samples every process of its tree with py-spy (a dev dependency;
needs ptrace rights). Prints the functions with the most samples, own time and
inclusive, per process, then the raw collapsed stacks' path.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import floors
from bench.common import SHARED, Context
from bench.harness import load
from bench.harness.procs import tree
from bench.harness.stack import running

TOP = 25
_PLUMBING = (
    "thread (",
    "Thread.",
    "_worker (",
    "_WorkItem",
    "_run_code",
    "_run_module",
    "<module>",
    "main (gateway/cli",
    "run (gateway/cli",
    "Runner.",
    "run (asyncio",
    "BaseEventLoop.",
    "Handle._run",
    "run_until_complete",
)


def _summary(collapsed: Path) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{collapsed.name}: {total} samples", "  own%  function (most own time)"]
    out += [f"{n / total:6.1%}  {frame}" for frame, n in own.most_common(TOP)]
    out.append(" incl%  function (most inclusive time, plumbing left out)")
    shown = [(f, n) for f, n in inclusive.most_common() if not f.startswith(_PLUMBING)]
    out += [f"{n / total:6.1%}  {frame}" for frame, n in shown[:TOP]]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    kind = argv[0] if argv else "http"
    seconds = float(argv[1]) if len(argv) > 1 else 10.0
    # "gil": sample only the thread holding the GIL, i.e. where a process spends its Python
    # CPU; without it, threads waiting on sockets or the database show too
    gil = "gil" in argv[2:]
    # "intake": no record consumer in the gateway (GATEWAY_RECORD_CONSUMERS=0), intake alone
    extra = {"GATEWAY_RECORD_CONSUMERS": "0"} if "intake" in argv[2:] else {}
    if "pack" in argv[2:]:  # the conformance-pack tier: the ANS pack beside the checkout
        extra["GATEWAY_CONFORMANCE_PACK"] = str(SHARED / "cisis")
    ctx = Context(workdir=Path(tempfile.mkdtemp(prefix="passerelle-profile-")))
    raw, _oru_cda, cda = floors.prepare(ctx).inputs
    with running(ctx, **extra) as stack:
        gw = stack.gateways[0]
        spies = []
        for pid in tree(gw.proc.pid):
            out = ctx.workdir / f"pyspy-{pid}.txt"
            cmd = [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                "--threads",
                *(["--gil"] if gil else []),
            ]
            spies.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL), out))
        opener, targets = stack.sender(kind)
        messages = raw.variants() if kind == "mllp" else cda.variants()
        run = asyncio.run(load.drive(opener, targets, messages, 16, seconds))
        print(run.figures())
        for spy, out in spies:
            spy.wait(seconds + 30)
            if out.exists():
                print(_summary(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
