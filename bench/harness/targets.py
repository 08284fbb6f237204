"""Issue 9's targets judged on the rows of one `make bench` run: the figure each is judged on,
and whether this run met it. Pure: rows in, rows out (the runner prints them last and keeps
them in bench/results.json). A target whose rows the run did not produce (its section not
run) is left out; one whose figure cannot judge it says why instead of yes or no.
"""

from __future__ import annotations

from bench.harness.inputs import RAW_ORU_OBX

RAW = f"MLLP ORU^R01 {RAW_ORU_OBX} OBX x16"
CRBIO = "HTTP CDA CR-BIO x16"
PACED = " paced 50%"
SOAK = f"soak MLLP ORU^R01 {RAW_ORU_OBX} OBX"
P99_MS = 50.0
FLOORS = 1.5
SOAK_S = 600  # the soak: 10 minutes
FLAT_SHARE = 0.02  # flat: the soak's fitted growth over its length is under 2 % of its start


def verdicts(rows: dict[str, dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for what, name, minimum in (
        ("raw ORU^R01 >= 300 msg/s", f"{RAW} built-in", 300.0),
        ("CR-BIO built-in tier >= 200 docs/s", f"{CRBIO} built-in", 200.0),
        ("CR-BIO pack tier >= 80 docs/s", f"{CRBIO} pack", 80.0),
    ):
        if name in rows:
            out[what] = _judged(rows[name].get("msg/s"), lambda v, m=minimum: v >= m)
    for what, name, throughput in (
        ("raw ORU^R01 p99 <= 50 ms at half load (150/s or more)", f"{RAW}{PACED}", 300.0),
        ("CR-BIO p99 <= 50 ms at half load (100/s or more)", f"{CRBIO}{PACED}", 200.0),
    ):
        if name in rows:
            out[what] = _latency(rows[name], throughput / 2)
    for what, name in (
        ("raw ORU^R01 e2e cost <= 1.5x floors", f"{RAW} built-in"),
        ("CR-BIO e2e cost <= 1.5x floors", f"{CRBIO} built-in"),
    ):
        if name in rows:
            out[what] = _judged(rows[name].get("x floors"), lambda v: v <= FLOORS)
    soak = next((row for key, row in rows.items() if key.startswith(SOAK)), None)
    if soak is not None:
        out["memory flat over a 10-minute soak"] = _flat(soak)
    return out


def _judged(value: object, met) -> dict:
    if not isinstance(value, int | float):
        return {"this run": value, "met": "not judged: no figure"}
    return {"this run": value, "met": "yes" if met(value) else "no"}


def _latency(row: dict, rate: float) -> dict:
    """The paced window's p99, judged only if it was paced at the target's half or more (e2e
    paces at half of what its closed-loop window carried, which may be more or less)."""
    p99, paced = row.get("p99 ms"), row.get("target msg/s")
    if not isinstance(p99, int | float) or not isinstance(paced, int | float):
        return {"this run": p99, "met": "not judged: no figure"}
    figure = f"{p99} ms at {paced}/s"
    if paced < rate:
        return {"this run": figure, "met": f"not judged: paced below {rate:g}"}
    return {"this run": figure, "met": "yes" if p99 <= P99_MS else "no"}


def _flat(row: dict) -> dict:
    start, per_min, seconds = row.get("RSS start MB"), row.get("RSS MB/min"), row.get("soak s")
    if not all(isinstance(v, int | float) for v in (start, per_min, seconds)):
        return {"this run": per_min, "met": "not judged: no figure"}
    growth = per_min * seconds / 60
    figure = f"{per_min} MB/min over {seconds} s from {start} MB"
    if seconds < SOAK_S:
        return {"this run": figure, "met": f"not judged: soak shorter than {SOAK_S} s"}
    return {"this run": figure, "met": "yes" if growth < FLAT_SHARE * start else "no"}
