"""`gateway serve` without RabbitMQ: one clear line, no traceback, non-zero exit."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_unreachable_broker_exits_with_one_line(tmp_path, keys_dir):
    env = {
        **os.environ,
        "GATEWAY_AMQP_URL": "amqp://guest:secret@127.0.0.1:1/",
        "GATEWAY_DATA_DIR": str(tmp_path),
        "GATEWAY_KEYS_DIR": str(keys_dir),
        "GATEWAY_HTTP_ADDR": "127.0.0.1:0",
        "GATEWAY_MLLP_ADDR": "127.0.0.1:0",
    }
    res = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "rabbitmq-server -detached" in lines[0]
    assert "secret" not in lines[0]  # the password is redacted
    assert "Traceback" not in res.stderr


def test_missing_signing_key_is_a_clear_usage_error(tmp_path):
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_KEYS_DIR": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 2
    assert "gateway keys init" in res.stderr and "Traceback" not in res.stderr


def test_keys_init_creates_a_private_key_readable_only_by_its_owner(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "init", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert oct((tmp_path / "signing.key").stat().st_mode & 0o777) == "0o600"
    again = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "init", "--dir", str(tmp_path), "--if-missing"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert again.returncode == 0 and again.stdout == ""
