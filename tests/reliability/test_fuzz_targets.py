"""Every fuzz target runs a few seconds in each test run (`make fuzz` runs them longer)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_fuzz_targets_run_briefly_without_a_crash():
    result = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run.py"), "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    for target in ("mllp_framer", "cda_parser"):
        assert f"{target}: exit 0" in result.stdout
