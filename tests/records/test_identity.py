"""Records-API tokens: what verifies, what does not, and where the secret lives."""

import base64
import json
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace

import pytest

from gateway.api.identity import InvalidToken, load_secret, mint, verify
from gateway.errors import ConfigError
from gateway.records.access import Caller, CallerKind

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def test_a_minted_token_names_its_caller():
    caller = Caller(CallerKind.PROFESSIONAL, "810001234567", "10")
    assert verify(SECRET, mint(SECRET, caller, 60, NOW), NOW + 30) == caller


def test_changed_claims_wrong_secret_expiry_and_garbage_are_refused():
    token = mint(SECRET, Caller(CallerKind.PATIENT, "184127505612355"), 60, NOW)
    version, body, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["sub"] = "292059912304525"  # someone else's record
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    cases = [
        ("bad signature", SECRET, f"{version}.{forged_body}.{mac}", NOW),
        ("bad signature", b"t" * 32, token, NOW),
        ("expired", SECRET, token, NOW + 61),
        ("not a v1 token", SECRET, "hello", NOW),
        ("too long", SECRET, "v1." + "a" * 5000, NOW),
        ("not a v1 token", SECRET, "v1.\u00e9.AAAA", NOW),  # was a 500: encoded as ASCII
    ]
    for reason, secret, candidate, now in cases:
        with pytest.raises(InvalidToken, match=reason):
            verify(secret, candidate, now)


def test_the_secret_is_made_once_in_the_data_dir_readable_by_its_owner_only(tmp_path):
    first = load_secret(tmp_path)
    assert len(first) == 64 and load_secret(tmp_path) == first
    assert oct((tmp_path / "token.secret").stat().st_mode & 0o777) == "0o600"
    assert load_secret(tmp_path, "c" * 40) == b"c" * 40  # configured wins
    with pytest.raises(ConfigError, match="GATEWAY_TOKEN_SECRET"):
        load_secret(tmp_path, "short")


def test_a_short_or_empty_secret_file_stops_the_gateway_instead_of_signing_with_it(tmp_path):
    """An empty token.secret made b"" the secret: anyone could mint an operator's token."""
    (tmp_path / "token.secret").write_text("\n")
    with pytest.raises(ConfigError, match="shorter than 32"):
        load_secret(tmp_path)


def test_processes_making_the_secret_at_once_all_read_the_same_whole_one(tmp_path):
    """Created then written, the file was read empty by a racing process (162 of 300 rounds
    of 4 processes in review): now it appears whole or not at all."""
    with ProcessPoolExecutor(4) as pool:
        for n in range(20):
            folder = tmp_path / str(n)
            secrets = set(pool.map(load_secret, [folder] * 8))
            assert len(secrets) == 1 and len(secrets.pop()) == 64


def test_gateway_token_and_records_represent(tmp_path, monkeypatch, capsys):
    from gateway.cli import main

    def run_cli(*args, env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        code = main(list(args))
        return SimpleNamespace(returncode=code, stdout=capsys.readouterr().out)

    env = {
        "GATEWAY_DATA_DIR": str(tmp_path),
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
    }
    res = run_cli("token", "representative", "rep-0001", env=env)
    assert res.returncode == 0
    caller = verify(load_secret(tmp_path), res.stdout.strip())
    assert caller == Caller(CallerKind.REPRESENTATIVE, "rep-0001")

    res = run_cli("records", "represent", "212345678901234", "rep-0001", env=env)
    assert res.returncode == 0
    from gateway.records.store import RecordStore

    store = RecordStore.open(env["GATEWAY_DATABASE_URL"])
    try:
        assert store.patient("212345678901234").representatives == {"rep-0001"}
        [event] = store.audit_trail("212345678901234")
        assert (event["actor_kind"], event["action"]) == ("operator", "record.representative")
    finally:
        store.close()

    bad = run_cli("token", "patient", "x", "--ttl", "0", env=env)
    assert bad.returncode == 2
    down = {**env, "GATEWAY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    assert run_cli("records", "represent", "1", "r", env=down).returncode == 3
