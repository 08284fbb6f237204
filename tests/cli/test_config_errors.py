"""A bad GATEWAY_* variable makes every command say so in one line and exit 2 (usage or
configuration), never a traceback and exit 1 (which means "the input is invalid")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT

DOCUMENT = str(FIXTURES / "cda/crbio_glycemia.xml")


@pytest.mark.parametrize(
    "args",
    [
        ["routing", "check"],
        ["route", "--explain", DOCUMENT],
        ["topology", "--dry-run"],
        ["replay", "--from", "parking", "--dry-run"],
        ["validate", DOCUMENT],
        ["keys", "init"],
        ["keys", "rotate"],
        ["serve"],
    ],
    ids=" ".join,
)
def test_a_bad_setting_is_one_line_and_exit_2(args, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_CONSUMER_PREFETCH": "70000"},
    )
    assert res.returncode == 2
    assert res.stderr == (
        "gateway: GATEWAY_CONSUMER_PREFETCH='70000': must be an integer from 1 to 65535\n"
    )
