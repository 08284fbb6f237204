"""Shared by benchmark sections: where things are, a timing loop, a signing key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"


def measure(fn: Callable[[], object], budget_s: float = 1.0) -> dict:
    """Run ``fn`` repeatedly for ``budget_s`` seconds: operations per second and mean ms."""
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget_s:
        fn()
        n += 1
    return {"ops/s": round(n / elapsed, 1), "mean ms": round(elapsed / n * 1000, 3)}


@dataclass
class Context:
    workdir: Path
    cache: dict = field(default_factory=dict)  # what sections share within one run

    @cached_property
    def keys_dir(self) -> Path:
        from gateway.signing.keystore import init_dev_key

        directory = self.workdir / "keys"
        init_dev_key(directory)
        return directory
