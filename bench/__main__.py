"""`python -m bench`: figures for the pure steps, measured on this machine.

Each row: operations per second and mean milliseconds over a fixed wall-clock budget. The
performance work adds end-to-end runs (MLLP and HTTP with confirms, consumer running).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from gateway.adapters.cda.parser import parse as parse_cda
from gateway.adapters.hl7v2.parser import parse as parse_hl7
from gateway.pipeline import Tools, ingest, read
from gateway.routing import loader
from gateway.signing.keystore import CERT_FILE, KEY_FILE, init_dev_key, load_pem
from gateway.signing.xades import XadesSigner
from gateway.submission import Submission

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def measure(fn: Callable[[], object], budget_s: float = 1.0) -> dict:
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget_s:
        fn()
        n += 1
    return {"ops_per_s": round(n / elapsed, 1), "mean_ms": round(elapsed / n * 1000, 3)}


def main() -> None:
    import tempfile

    keys = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    init_dev_key(keys)
    tools = Tools(
        signer=XadesSigner(load_pem(keys / KEY_FILE, keys / CERT_FILE)),
        routing=loader.load(ROOT / "routing.yaml"),
    )
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    oru = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
    sub_cda = Submission(raw=cda, transport="bench")
    sub_oru = Submission(raw=oru, transport="bench")
    rows = {
        f"CDA parse ({len(cda) // 1024} KB)": measure(lambda: parse_cda(cda)),
        "CDA parse+validate": measure(lambda: read(sub_cda, tools.checks)),
        "CDA full pipeline (sign incl.)": measure(lambda: ingest(sub_cda, tools)),
        f"HL7v2 tokenize ({len(oru)} B)": measure(lambda: parse_hl7(oru)),
        "HL7v2 full pipeline": measure(lambda: ingest(sub_oru, tools)),
    }
    width = max(map(len, rows))
    print(f"{'step':{width}}  {'ops/s':>10}  {'mean ms':>9}")
    for name, r in rows.items():
        print(f"{name:{width}}  {r['ops_per_s']:>10}  {r['mean_ms']:>9}")
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
