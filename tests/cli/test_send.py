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


@pytest.fixture
def proxy_502():
    """An HTTP proxy whose gateway is down: an HTML 502 page for every POST."""
    import http.server

    class BadGateway(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_proxys_error_page_is_unavailable_and_every_file_is_still_tried(proxy_502):
    cda = str(FIXTURES / "cda/crbio_glycemia.xml")
    oru = str(FIXTURES / "hl7v2/oru_r01_lab_results.hl7")
    res = send(cda, oru, "--to", proxy_502)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert f"{cda}: unavailable HTTP 502: not a gateway answer" in res.stdout
    assert f"{oru}: unavailable HTTP 502: not a gateway answer" in res.stdout
    assert "unavailable  2" in res.stdout.splitlines()  # the summary table
