"""Operator endpoints (/messages, /ui) need an operator token: as a bearer token, or kept by
the browser in the HttpOnly, SameSite=Strict cookie the /ui sign-in form sets."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from starlette.requests import Request

from gateway.api.identity import mint
from gateway.api.operator import COOKIE, same_origin
from gateway.records.access import Caller, CallerKind
from tests.tracking.scenario import http, operator_token

pytestmark = pytest.mark.broker


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def raw(
    method: str,
    url: str,
    body: bytes | None = None,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
):
    """(status, headers, text) without following redirects."""
    headers = dict(headers or {})
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def test_messages_need_an_operator_token(start_gateway):
    gw = start_gateway()
    base = gw.http_url
    endpoints = [
        ("GET", "/messages"),
        ("GET", "/messages/" + "0" * 32),
        ("POST", "/messages/" + "0" * 32 + "/replay"),
        ("GET", "/ui/counters"),
    ]
    patient = mint(gw.services.token_secret, Caller(CallerKind.PATIENT, "184127505612355"))
    for method, path in endpoints:
        status, headers, _ = raw(method, base + path)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer", path
        assert http(method, base + path, token="v1.forged.token")[0] == 401, path
        assert http(method, base + path, token=patient)[0] == 403, path
    op = operator_token(gw)
    assert http("GET", base + "/messages", token=op)[0] == 200
    assert http("GET", base + "/ui/counters", token=op)[0] == 200
    assert http("GET", base + "/messages/" + "0" * 32, token=op)[0] == 404
    # and an operator token opens no patient record
    status, _ = http("GET", base + "/patients/184127505612355/documents", token=op)
    assert status == 403


def test_the_browser_signs_in_with_a_token_kept_in_a_strict_httponly_cookie(start_gateway):
    gw = start_gateway()
    base = gw.http_url
    status, _, page = raw("GET", base + "/ui")
    assert status == 401 and "id='login'" in page and "id='search'" not in page

    status, _, page = raw("POST", base + "/ui/login", b"token=not-a-token")
    assert status == 401 and "id='login-error'" in page

    op = operator_token(gw)
    form = urllib.parse.urlencode({"token": op}).encode()
    status, headers, _ = raw("POST", base + "/ui/login", form)
    assert status == 303 and headers["Location"] == "/ui"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={op};")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags

    status, _, page = raw("GET", base + "/ui", cookie=op)
    assert status == 200 and "id='search'" in page and "sign out" in page
    assert raw("GET", base + "/ui/counters", cookie=op)[0] == 200

    status, headers, _ = raw("POST", base + "/ui/logout", cookie=op)
    assert status == 303 and f'{COOKIE}=""' in headers["Set-Cookie"]


def test_a_signed_in_browser_replays_only_from_the_gateways_own_pages(start_gateway):
    """SameSite=Strict lets a same-site page (another port of the host) post with the cookie:
    a cookie-authenticated replay must also say it comes from the gateway's origin."""
    gw = start_gateway()
    base = gw.http_url
    here = "http://" + urllib.parse.urlsplit(base).netloc
    replay = base + "/messages/" + "0" * 32 + "/replay"  # no such message: 404 once let in
    op = operator_token(gw)
    refused = [
        {"Origin": "http://127.0.0.1:9999"},  # the reviewer's same-site form post
        {"Origin": "null"},
        {"Origin": here, "Sec-Fetch-Site": "same-site"},  # fetch metadata decides
        {"Sec-Fetch-Site": "cross-site"},
        {},  # a cookie and nothing to tell where the request comes from
    ]
    for headers in refused:
        status, _, text = raw("POST", replay, b"", cookie=op, headers=headers)
        assert status == 403 and "own pages" in text, headers
    for headers in ({"Origin": here}, {"Sec-Fetch-Site": "same-origin"}):
        assert raw("POST", replay, b"", cookie=op, headers=headers)[0] == 404, headers
    # a bearer token is not sent by a browser on its own: no origin asked for
    bearer = {"Authorization": f"Bearer {op}", "Origin": "http://127.0.0.1:9999"}
    assert raw("POST", replay, b"", headers=bearer)[0] == 404
    assert http("POST", replay, token=op)[0] == 404
    # reading is unchanged
    assert raw("GET", base + "/ui/counters", cookie=op, headers=refused[0])[0] == 200


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("https://gw.example", "gw.example:443", True),  # default ports, written or not
        ("http://gw.example:80", "GW.example", True),
        ("https://gw.example", "gw.example:8443", False),
        ("http://gw.example.evil", "gw.example", False),
    ],
)
def test_the_origin_is_compared_with_the_host_the_request_was_sent_to(origin, host, same):
    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(b"origin", origin.encode()), (b"host", host.encode())],
    }
    assert same_origin(Request(scope)) is same
