"""Every request body is bounded in size and in time (gateway.api.limits), on every route: a
refusal comes at once, before the body is read, and the connection is closed. Sent to a
running gateway over raw sockets, as a hostile client would."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from gateway.api.limits import BODY_BYTES
from tests.conftest import FIXTURES

pytestmark = pytest.mark.broker

INS = "184127505612355"
HUGE = 300 * 1024 * 1024  # declared, never sent whole
ROUTES = [  # a body on each: a form, two JSON objects read by FastAPI before the token check
    ("POST", "/ui/login", "application/x-www-form-urlencoded"),
    ("PUT", f"/patients/{INS}/attending", "application/json"),
    ("PUT", f"/patients/{INS}/access/810000000001", "application/json"),
]


def _connect(gw) -> socket.socket:
    return socket.create_connection(gw.runtime.http_address, timeout=10)


def _head(method: str, path: str, content_type: str, length: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{length}\r\n"
    ).encode()


def _answer(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _stream(sock: socket.socket, total: int, chunked: bool) -> int:
    """Send up to ``total`` bytes of body in 1 MiB pieces; how many went before the gateway
    cut the connection."""
    block, sent = b"t" * (1 << 20), 0
    try:
        while sent < total:
            sock.sendall(b"100000\r\n" + block + b"\r\n" if chunked else block)
            sent += len(block)
    except OSError:  # reset or broken pipe: the gateway stopped reading
        pass
    return sent


@pytest.mark.parametrize(("method", "path", "content_type"), ROUTES)
def test_a_declared_length_over_the_bound_is_refused_before_a_byte_of_body(
    start_gateway, method, path, content_type
):
    gw = start_gateway()
    with _connect(gw) as sock:
        sock.sendall(_head(method, path, content_type, f"Content-Length: {HUGE}\r\n"))
        answer = _answer(sock)  # ends: the connection is closed
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:60]
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
        "detail": f"body larger than {BODY_BYTES} bytes"
    }


@pytest.mark.parametrize(("method", "path", "content_type"), ROUTES)
def test_a_chunked_body_is_cut_off_at_the_bound_not_read_whole(
    start_gateway, method, path, content_type
):
    """No length declared: counted as it comes, refused past the bound, the rest unread
    (300 MiB offered; the socket buffers take a few MiB before the gateway resets)."""
    gw = start_gateway()
    with _connect(gw) as sock:
        sock.sendall(_head(method, path, content_type, "Transfer-Encoding: chunked\r\n"))
        sent = _stream(sock, HUGE, chunked=True)
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b"reset"
    assert sent < 64 * 1024 * 1024, f"the gateway took {sent >> 20} MiB"
    assert answer.startswith(b"HTTP/1.1 413 ") or answer == b"reset", answer[:60]


def test_a_login_form_over_its_own_bound_gets_the_sign_in_page_and_a_closed_connection(
    start_gateway,
):
    gw = start_gateway()
    form = b"token=" + b"a" * 9000  # over ui.MAX_LOGIN_BYTES (8 KiB), under BODY_BYTES
    with _connect(gw) as sock:
        head = _head("POST", "/ui/login", "application/x-www-form-urlencoded", "")
        sock.sendall(head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n"))
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(form), form))
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:60]
    assert b"the form is too large" in answer and b"connection: close" in answer.lower()


@pytest.mark.parametrize("path", ["/ui/login", "/documents"])
def test_a_body_trickled_a_byte_at_a_time_gets_408_at_the_request_timeout(start_gateway, path):
    gw = start_gateway(GATEWAY_REQUEST_TIMEOUT="1")
    with _connect(gw) as sock:
        sock.sendall(_head("POST", path, "text/plain", "Content-Length: 100\r\n"))
        started = time.monotonic()
        sock.settimeout(0.3)
        answer = b""
        while not answer and time.monotonic() - started < 5:
            try:
                sock.sendall(b"t")
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:60]
    assert b"connection: close" in answer.lower()
    assert elapsed < 2.5, f"answered after {elapsed:.1f}s"


def test_an_intake_body_over_the_document_bound_is_refused_and_the_connection_closed(
    start_gateway,
):
    gw = start_gateway(GATEWAY_MAX_DOCUMENT_BYTES="1024")
    with _connect(gw) as sock:
        sock.sendall(_head("POST", "/documents", "application/xml", "Content-Length: 2048\r\n"))
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()


def test_bodies_within_the_bounds_are_served_as_before(start_gateway):
    gw = start_gateway()
    put = urllib.request.Request(
        f"{gw.http_url}/patients/{INS}/attending",
        data=b'{"professional_id": "810000000001"}',
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(put, timeout=10)
    assert denied.value.code == 401  # reached the token check: the body was taken
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()  # 1 MiB-class bound of its own
    post = urllib.request.Request(gw.http_url + "/documents", data=cda, method="POST")
    with urllib.request.urlopen(post, timeout=30) as resp:
        assert resp.status == 202
    with urllib.request.urlopen(gw.http_url + "/health", timeout=10) as resp:
        assert resp.status == 200
