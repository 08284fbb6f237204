"""Operator authentication for /messages and /ui: an operator token (`gateway token operator
NAME`), sent as a bearer token by programs, or kept by the browser in a cookie set by the
/ui login form (HttpOnly, SameSite=Strict: a page of another site can neither read it nor
make the browser send it with a replay request).

SameSite=Strict is about sites, not origins: a page on another port or subdomain of the same
site (``http://127.0.0.1:9999``) is same-site, and its form POST carries the cookie. So a
state-changing request (anything but GET/HEAD/OPTIONS) authenticated by the cookie must also
come from the gateway's own pages: ``Sec-Fetch-Site: same-origin`` when the browser sends
fetch metadata (it decides alone: a page cannot set it), else an ``Origin`` naming the host
the request was sent to; with neither, refused (403). Browsers send both on every POST, the
UI's own script (``fetch`` from /ui) included. Bearer-token requests are not concerned: a
page cannot make the browser add that header.

Message metadata carries no clinical payload and no patient identity, but it names senders,
documents and failures, and a replay moves messages: none of it is for anyone on the network.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from gateway.api.bearer import bearer, verified_caller
from gateway.records.access import Caller, CallerKind

COOKIE = "passerelle_operator"
REQUIRED = "an operator token is required"
CROSS_ORIGIN = "a signed-in browser may only do this from the gateway's own pages"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def operator_from(request: Request, token: str | None) -> Caller:
    """The operator ``token`` names; 401 without a valid token, 403 for another kind."""
    caller = verified_caller(request, token, "operator.unauthenticated", REQUIRED)
    if caller.kind is not CallerKind.OPERATOR:
        raise HTTPException(403, REQUIRED)
    return caller


def operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """FastAPI dependency: the bearer token, else the /ui login cookie (same-origin only
    for a state-changing request: see the module docstring)."""
    if credentials:
        return operator_from(request, credentials.credentials)
    token = request.cookies.get(COOKIE)
    if token is not None and request.method not in SAFE_METHODS and not same_origin(request):
        raise HTTPException(403, CROSS_ORIGIN)
    return operator_from(request, token)


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from a page of the gateway's own origin."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site.strip().lower() == "same-origin"
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (a sandboxed frame, a file: page …)
    return _authority(parts.scheme, parts.netloc) == _authority(parts.scheme, host.strip())


def _authority(scheme: str, host_port: str) -> str:
    """``host[:port]`` lowercased, without the scheme's default port (browsers leave it out
    of Host and Origin alike, but a proxy may not)."""
    default = {"http": ":80", "https": ":443"}[scheme]
    value = host_port.lower()
    return value[: -len(default)] if value.endswith(default) else value


Operator = Annotated[Caller, Depends(operator)]
