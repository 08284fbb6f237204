"""CDA validation throughput on a ~130 KB CR-BIO from the ANS corpus: built-in and pack tiers."""

from __future__ import annotations

import time

from bench.common import SHARED, Context, measure
from gateway.adapters.cda.intake import read
from gateway.adapters.cda.parser import CdaLimits
from gateway.validators.cda import BUILT_IN, CdaValidator

CRBIO = SHARED / "corpus/cda/BIO-CR-BIO_2024.01_TSH_1.xml"
PACK = SHARED / "cisis"
SETTLING = 60


def rows(ctx: Context) -> dict[str, dict]:
    if not CRBIO.is_file():
        print(f"skipped: {CRBIO} absent")
        return {}
    raw = CRBIO.read_bytes()
    limits = CdaLimits()
    built_in = CdaValidator()
    out = {
        f"CDA validate built-in ({len(raw) // 1024} KB CR-BIO), validations/s": measure(
            lambda: read(raw, limits, built_in)
        )
    }
    if PACK.is_dir():
        from gateway.conformance import pack
        from gateway.conformance.validator import PackValidator

        layer = PackValidator(pack.load(PACK))
        layer.warm_up()  # compilation is once per process; not what is measured
        with_pack = CdaValidator(layers=(*BUILT_IN, layer))
        # Saxon's collections after compiling slow the first tens of validations of a process
        # (docs/performance.md, "Collections after compiling"): shown apart, then steady state.
        start = time.perf_counter()
        for _ in range(SETTLING):
            read(raw, limits, with_pack)
        elapsed = time.perf_counter() - start
        out[f"CDA validate built-in + pack, first {SETTLING} after compiling"] = {
            "ops/s": round(SETTLING / elapsed, 1),
            "mean ms": round(elapsed / SETTLING * 1000, 3),
        }
        out["CDA validate built-in + pack, validations/s"] = measure(
            lambda: read(raw, limits, with_pack), budget_s=3.0
        )
    return out
