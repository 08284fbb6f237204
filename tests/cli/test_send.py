"""`gateway send` to a running gateway, over MLLP and HTTP."""

import socket
import subprocess
import sys
import threading

import pytest

from gateway.cli.send import send_mllp
from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.broker


def send(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "send", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_send_over_both_transports(start_gateway, tmp_path):
    gw = start_gateway()
    host, port = gw.mllp
    oru = str(FIXTURES / "hl7v2/oru_r01_lab_results.hl7")
    cda = str(FIXTURES / "cda/crbio_glycemia.xml")
    res = send(oru, "--to", f"mllp://{host}:{port}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"{oru}: accepted AA")
    res = send(cda, "--to", gw.http_url)
    assert res.returncode == 0 and "accepted 1.2.250.1.999.1.1.20261101.4711" in res.stdout

    bad = tmp_path / "bad.hl7"
    bad.write_bytes(
        (FIXTURES / "hl7v2/oru_r01_lab_results.hl7")
        .read_bytes()
        .replace(b"292059912304525", b"292059912304599")
    )
    res = send(str(bad), "--to", f"mllp://{host}:{port}")
    assert res.returncode == 1 and "rejected AE" in res.stdout and "ins.nir-key" in res.stdout


def test_unreachable_gateway_exits_3():
    res = send(str(FIXTURES / "cda/crbio_glycemia.xml"), "--to", "http://127.0.0.1:1")
    assert res.returncode == 3 and "unavailable" in res.stdout


def test_an_answer_that_is_not_a_well_formed_frame_is_unavailable_not_a_crash():
    """A peer whose ACK holds an FS not followed by CR: the frame is malformed, its content
    unread; the file is reported unavailable (to send again), the command does not crash."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_once():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"\x0bMSH|^~\\&|GW|||||||ACK||P|2.5\rMSA|AA|1\x1cX\r\x1c\r")

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        answer = send_mllp("127.0.0.1", port, b"MSH|^~\\&|LAB|||||||ORU^R01|1|P|2.5\r", 5.0)
    finally:
        thread.join(5)
        server.close()
    assert answer.status == "unavailable"
