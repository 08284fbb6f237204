"""Issue 9's targets judged on a bench run's rows (bench.harness.targets)."""

from bench.harness import inputs, targets

RAW, CRBIO = targets.RAW, targets.CRBIO


def run_rows(**changes) -> dict[str, dict]:
    rows = {
        f"{RAW} built-in": {"msg/s": 310.0, "x floors": 9.9},
        f"{CRBIO} built-in": {"msg/s": 199.9, "x floors": 1.5},
        f"{CRBIO} pack": {"msg/s": "n/a"},
        f"{RAW}{targets.PACED}": {"p99 ms": 34.3, "target msg/s": 155.0},
        f"{CRBIO}{targets.PACED}": {"p99 ms": 20.0, "target msg/s": 99.9},
        f"{targets.SOAK} x16": {"RSS start MB": 380.0, "RSS MB/min": 0.5, "soak s": 600},
    }
    for name, row in changes.items():
        rows[name].update(row)
    return rows


def met(rows: dict[str, dict]) -> dict[str, str]:
    return {what: row["met"] for what, row in targets.verdicts(rows).items()}


def test_each_target_is_judged_on_its_row():
    assert met(run_rows()) == {
        "raw ORU^R01 >= 300 msg/s": "yes",
        "CR-BIO built-in tier >= 200 docs/s": "no",
        "CR-BIO pack tier >= 80 docs/s": "not judged: no figure",
        "raw ORU^R01 p99 <= 50 ms at half load (150/s or more)": "yes",
        "CR-BIO p99 <= 50 ms at half load (100/s or more)": "not judged: paced below 100",
        "raw ORU^R01 e2e cost <= 1.5x floors": "no",
        "CR-BIO e2e cost <= 1.5x floors": "yes",
        "memory flat over a 10-minute soak": "yes",  # 5 MB over 10 min from 380
    }
    judged = targets.verdicts(run_rows())
    assert judged["raw ORU^R01 p99 <= 50 ms at half load (150/s or more)"]["this run"] == (
        "34.3 ms at 155.0/s"
    )


def test_limits_are_inclusive_where_the_issue_says_so():
    rows = run_rows(**{f"{CRBIO} built-in": {"msg/s": 200.0}})
    rows[f"{RAW}{targets.PACED}"].update({"p99 ms": 50.1})
    verdict = met(rows)
    assert verdict["CR-BIO built-in tier >= 200 docs/s"] == "yes"
    assert verdict["raw ORU^R01 p99 <= 50 ms at half load (150/s or more)"] == "no"


def test_memory_growth_and_short_soaks():
    growing = run_rows(**{f"{targets.SOAK} x16": {"RSS MB/min": 0.8}})  # 8 MB: over 2 %
    assert met(growing)["memory flat over a 10-minute soak"] == "no"
    short = run_rows(**{f"{targets.SOAK} x16": {"soak s": 60}})
    assert met(short)["memory flat over a 10-minute soak"] == "not judged: soak shorter than 600 s"


def test_targets_whose_rows_were_not_run_are_left_out():
    assert targets.verdicts({f"{RAW} built-in": {"msg/s": 250.0}}) == {
        "raw ORU^R01 >= 300 msg/s": {"this run": 250.0, "met": "no"},
        "raw ORU^R01 e2e cost <= 1.5x floors": {"this run": None, "met": "not judged: no figure"},
    }


def test_the_raw_row_names_are_the_ones_e2e_writes():
    assert f"MLLP {inputs.oru_raw().name} x16" == targets.RAW
