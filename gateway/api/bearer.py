"""Who a bearer token names, for the routes that take one (records API, operator endpoints).

One place turns a token into a Caller or an HTTP 401 with the ``WWW-Authenticate: Bearer``
challenge; what the caller may then do is each route's own decision.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer

from gateway.api import identity
from gateway.logs import log
from gateway.records.access import Caller

bearer = HTTPBearer(auto_error=False, description="`gateway token …` mints one")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def verified_caller(request: Request, token: str | None, event: str, missing: str) -> Caller:
    """The caller ``token`` names; 401 (``missing`` as the reason) without one, 401 for a
    malformed, forged or expired one (logged as ``event``, never the token)."""
    if not token:
        raise HTTPException(401, missing, headers=CHALLENGE)
    try:
        return identity.verify(request.app.state.services.token_secret, token)
    except identity.InvalidToken as exc:
        log(event, reason=str(exc))
        raise HTTPException(401, f"invalid token: {exc}", headers=CHALLENGE) from None
