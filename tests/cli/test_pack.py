"""`gateway pack check`: every missing reference listed, exit codes as documented."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.shared
def test_pack_check_lists_the_published_defects(shared):
    res = run("pack", "check", "--json", str(shared / "cisis"))
    assert res.returncode == 1, res.stderr
    layers = {r["layer"]: r for r in map(json.loads, res.stdout.splitlines())}
    crbio_2023 = layers["model:BIO-CR-BIO_2023.01"]["missing"]
    assert len(crbio_2023) == 9 and all(m["kind"] == "include" for m in crbio_2023)
    [supplied] = layers["structurationMinimale"]["supplied_from_svs"]
    assert supplied["from"] == "jeuxDeValeurs/JDV_J07_XdsTypeCode_CISIS.xml"
    assert any("RechAgHbS" in c["href"] for c in layers["model:CSE-CS8_2025.01"]["case_resolved"])
    readable = run("pack", "check", str(shared / "cisis"))
    assert "MISSING" in readable.stdout and "missing reference(s)" in readable.stdout


def test_not_a_pack_is_a_usage_error(tmp_path):
    res = run("pack", "check", str(tmp_path))
    assert res.returncode == 2 and "not a CI-SIS conformance pack" in res.stderr
