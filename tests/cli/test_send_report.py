"""`gateway send DIR`: plain lines and a summary table when piped, a progress bar on a terminal."""

import io
import os
import pty
import subprocess
import sys

import pytest

from gateway.cli._report import Progress, table
from tests.conftest import FIXTURES, ROOT


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal():
    piped = io.StringIO()
    Progress(3, piped).update(1, "accepted 1")
    assert piped.getvalue() == ""
    tty = FakeTty()
    bar = Progress(4, tty)
    bar.update(2, "accepted 2")
    bar.close()
    assert "\r[" in tty.getvalue() and "2/4 accepted 2" in tty.getvalue()
    assert tty.getvalue().endswith("\r\033[K")  # the bar is erased before the summary


def test_table_aligns_and_cuts():
    text = table(("file", "reason"), [("a.xml", "x" * 200), ("long-name.hl7", "ok")], 20)
    lines = text.splitlines()
    assert lines[0] == "file           reason"
    assert lines[2].startswith("a.xml          xxxx") and lines[2].endswith("…")
    assert len(lines[2]) == len("a.xml          ") + 20


@pytest.fixture
def outbox(tmp_path):
    box = tmp_path / "outbox"
    box.mkdir()
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    (box / "1-good.xml").write_bytes(cda)
    (box / "2-bad.xml").write_bytes(cda.replace(b"184127505612355", b"184127505612399"))
    (box / "3-oru.hl7").write_bytes((FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes())
    return box


@pytest.mark.broker
def test_send_a_directory_piped_and_on_a_terminal(start_gateway, outbox):
    gw = start_gateway()
    cmd = [sys.executable, "-m", "gateway", "send", str(outbox), "--to", gw.http_url]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1, res.stderr  # one rejection
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"{outbox / '1-good.xml'}: accepted 1.2.250")
    assert lines[1].startswith(f"{outbox / '2-bad.xml'}: rejected ins.nir-key: INS key")
    assert lines[2].startswith(f"{outbox / '3-oru.hl7'}: accepted")
    assert "accepted     2" in res.stdout and "rejected     1" in res.stdout
    [row] = [line for line in lines[3:] if line.startswith(str(outbox / "2-bad.xml"))]
    message_id = row.split()[2]
    assert gw.services.tracker.flush(5)
    assert gw.services.tracking.message(message_id)["status"] == "rejected"
    assert "\r" not in res.stdout + res.stderr  # no progress bar when piped

    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=follower, stderr=follower, cwd=ROOT)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.wait(timeout=60) == 1
    screen = out.decode()
    assert "] 3/3 accepted 2  rejected 1  unavailable 0" in screen
    assert f"{outbox / '1-good.xml'}: accepted" not in screen  # the bar replaces the lines
    assert "rejected     1" in screen and "ins.nir-key" in screen
