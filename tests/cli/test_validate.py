"""`gateway validate`: the JSON-lines contract and exit codes other tools rely on."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT

GATEWAY = [sys.executable, "-m", "gateway"]


def run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def bad_ins_cda(tmp_path):
    """The fixture with a mistyped INS (wrong NIR key)."""
    bad = tmp_path / "bad.xml"
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    bad.write_bytes(cda.replace(b"184127505612355", b"184127505612399"))
    return bad


def test_json_lines_for_valid_files(tmp_path):
    cda = FIXTURES / "cda/crbio_glycemia.xml"
    oru = FIXTURES / "hl7v2/oru_r01_lab_results.hl7"
    res = run("validate", "--json", str(cda), str(oru))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(v["file"], v["kind"], v["valid"]) for v in lines] == [
        (str(cda), "cda", True),
        (str(oru), "hl7v2", True),
    ]
    assert lines[0]["metadata"]["document_id"] == "1.2.250.1.999.1.1.20261101.4711"
    assert set(lines[0]) == {"file", "kind", "valid", "findings", "metadata"}


def test_any_invalid_file_exits_1_and_names_the_rule(tmp_path):
    bad = bad_ins_cda(tmp_path)
    res = run("validate", "--json", str(FIXTURES / "cda/crbio_glycemia.xml"), str(bad))
    assert res.returncode == 1
    verdict = json.loads(res.stdout.splitlines()[1])
    assert verdict["valid"] is False
    [finding] = verdict["findings"]
    assert {"rule", "severity", "location", "message"} <= set(finding)
    assert finding["rule"] == "ins.nir-key" and finding["severity"] == "error"


def test_readable_report_by_default(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<html/>")
    res = run("validate", str(bad))
    assert res.returncode == 1
    assert "INVALID" in res.stdout and "cda.clinical-document" in res.stdout
    assert "fix:" in res.stdout


def test_readable_report_for_many_files_ends_with_a_count(tmp_path):
    bad = bad_ins_cda(tmp_path)
    res = run("validate", str(FIXTURES / "cda/crbio_glycemia.xml"), str(bad))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[0].endswith("crbio_glycemia.xml: valid (cda; no findings)")
    assert lines[1] == f"{bad}: INVALID (cda; 1 error(s), 0 warning(s))"
    assert lines[2].startswith("  error   ins.nir-key at /") and "INS key" in lines[2]
    assert lines[3].strip() == "fix: check the INS against the patient's INSi record"
    assert lines[-1] == "2 files: 1 valid, 1 invalid"
    assert not any(line.startswith("{") for line in lines)  # JSON only with --json


def test_every_command_has_help_with_examples(capsys):
    from gateway.cli import build_parser

    for command in ("serve", "validate", "send", "keys init"):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*command.split(), "--help"])
        assert exit_.value.code == 0
        assert "examples:\n  gateway " + command.split()[0] in capsys.readouterr().out, command


def test_usage_errors_exit_2():
    assert run("validate").returncode == 2
    res = run("validate", "/no/such/file.xml")
    assert res.returncode == 2 and "no such file" in res.stderr


def test_pack_that_is_not_a_pack_is_a_usage_error(tmp_path):
    res = run("validate", "--pack", str(tmp_path), str(FIXTURES / "cda/crbio_glycemia.xml"))
    assert res.returncode == 2 and "not a CI-SIS conformance pack" in res.stderr


@pytest.mark.parametrize("form", [[], ["--json"]])
def test_a_reader_that_goes_away_early_gets_141_not_success(tmp_path, form):
    """`gateway validate outbox/ | head -1`: the run stops at the closed pipe, before judging
    every file, so it neither claims success (0) nor a verdict it never reached: 141, as the
    shell reports for a C tool killed by SIGPIPE — and no traceback."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for n in range(3):
        (outbox / f"bad{n}.xml").write_bytes(bad_ins_cda(tmp_path).read_bytes())
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        res = subprocess.run(
            [*GATEWAY, "validate", *form, str(outbox)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert res.returncode == 141
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr
