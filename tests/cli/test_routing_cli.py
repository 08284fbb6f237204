"""`gateway routing check`, `route --explain`, `topology`, `replay`: output and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.broker import names as h
from gateway.broker import topology
from gateway.routing import loader
from tests.broker.helpers import depth, get_one, publish
from tests.conftest import FIXTURES, ROOT

GATEWAY = [sys.executable, "-m", "gateway"]


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GATEWAY, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, **env},
    )


def test_check_accepts_the_example_file():
    res = run("routing", "check")
    assert res.returncode == 0, res.stderr
    assert "routing.yaml: valid (7 destinations" in res.stdout


def test_check_lists_each_problem_with_its_line_and_exits_1(tmp_path):
    bad = tmp_path / "routing.yaml"
    bad.write_text(
        "version: 1\n"
        "destinations: {a: {}}\n"
        "rules:\n"
        "  - {name: all, to: [a]}\n"
        "  - {name: late, match: {sender: x}, to: [b]}\n"
        "default: {to: [a]}\n"
    )
    res = run("routing", "check", str(bad))
    assert res.returncode == 1
    assert f"{bad}:5: rule 'late' can never match" in res.stderr
    assert f"{bad}:5: unknown destination 'b' at rules[1].to[0]" in res.stderr
    assert "2 problem(s)" in res.stderr


def test_check_of_a_missing_file_is_a_usage_error(tmp_path):
    assert run("routing", "check", str(tmp_path / "none.yaml")).returncode == 2


def test_check_refuses_what_yaml_would_silently_change(tmp_path):
    """Duplicate keys (last wins), a flag written Y (never matches), a Latin-1 file."""
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        "version: 1\n"
        "destinations: {a: {}}\n"
        "rules:\n"
        "  - {name: x, match: {flags.DESTDMP: Y}, to: [a]}\n"
        "default: {to: [a]}\n"
        "default: {to: [a]}\n"
    )
    res = run("routing", "check", str(dup))
    assert res.returncode == 1
    assert f"{dup}:6: duplicate key 'default' at top level (first at line 5)" in res.stderr
    dup.write_text(dup.read_text().replace("default: {to: [a]}\n", "", 1))
    res = run("routing", "check", str(dup))
    assert res.returncode == 1
    assert f"{dup}:4: flags.DESTDMP in rule 1 is compared with 'Y'" in res.stderr
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(
        dup.read_text().replace("flags.DESTDMP: Y", "title: détail").encode("latin-1")
    )
    res = run("routing", "check", str(latin1))
    assert res.returncode == 1
    assert f"{latin1}:4: not UTF-8: byte 0xe9 at line 4" in res.stderr


def test_explain_says_a_statistics_copy_alone_also_goes_to_the_default(tmp_path):
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\n"
        "destinations: {record: {}, lab-statistics: {strip: [patient]}, parking: {}}\n"
        "rules:\n"
        "  - {name: biology-statistics, match: {type_code: 11502-2}, to: [lab-statistics]}\n"
        "default: {to: [parking]}\n"
    )
    res = run(
        "route", "--explain", str(FIXTURES / "cda/crbio_glycemia.xml"), "--routing", str(routing)
    )
    assert res.returncode == 0, res.stderr
    assert (
        "  DEFAULT only de-identified copies (lab-statistics) matched, not a delivery" in res.stdout
    )
    assert res.stdout.rstrip().endswith("→ lab-statistics, parking (default)")


def test_explain_shows_each_rule_verdict_and_the_destinations():
    res = run("route", "--explain", str(FIXTURES / "cda/crbio_glycemia.xml"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "MATCH shared-record-direct" in out and "MATCH biology-statistics" in out
    assert "no    secure-mail-professionals" in out and "(found: nothing)" in out
    assert out.rstrip().endswith("→ patient-record, lab-statistics")


def test_explain_of_an_invalid_input_says_it_goes_to_rejected(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("not a document")
    res = run("route", "--explain", str(bad))
    assert res.returncode == 1
    assert "rejected (unreadable" in res.stdout and "→ rejected" in res.stdout


def test_topology_dry_run_prints_queues_with_retry_and_dead_letter():
    res = run("topology", "--dry-run", GATEWAY_AMQP_PREFIX="demo")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "exchange demo.documents (type=topic)" in lines
    assert any(
        line.startswith("queue demo.patient-record.retry-1000ms") and "x-message-ttl=1000" in line
        for line in lines
    )
    assert "binding demo.documents → demo.lab-statistics [lab-statistics]" in lines


def test_every_new_command_has_help_with_examples():
    for args in (["routing", "check"], ["route"], ["topology"], ["replay"]):
        res = run(*args, "--help")
        assert res.returncode == 0 and "examples:" in res.stdout, args


@pytest.mark.broker
def test_replay_command_moves_a_parked_message_back(broker_ns):
    table = loader.load(ROOT / "routing.yaml")
    broker_ns.track(table)
    topology.declare_at(broker_ns.url, topology.plan(table, broker_ns.names))
    publish(broker_ns.url, broker_ns.names.exchange, "parking", b"{}", message_id="doc-p")
    env = {"GATEWAY_AMQP_URL": broker_ns.url, "GATEWAY_AMQP_PREFIX": broker_ns.prefix}

    res = run("replay", "--from", "parking", "--filter", "document_id=doc-p", **env)
    assert res.returncode == 1  # no destination recorded and no --to: kept, and said so
    assert "kept doc-p: no destination header; use --to" in res.stdout

    res = run("replay", "--from", "parking", "--to", "secure-mail-ps", **env)
    assert res.returncode == 0, res.stderr
    assert "replayed doc-p → secure-mail-ps" in res.stdout
    assert depth(broker_ns.url, broker_ns.names.queue("parking")) == 0
    props, _ = get_one(broker_ns.url, broker_ns.names.queue("secure-mail-ps"))
    assert props.headers[h.REPLAYED] == 1


def test_replay_with_a_bad_filter_is_a_usage_error():
    res = run("replay", "--from", "parking", "--filter", "nonsense")
    assert res.returncode == 2 and "KEY=VALUE" in res.stderr
