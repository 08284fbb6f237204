"""Operator authentication for /messages and /ui: an operator token (`gateway token operator
NAME`), sent as a bearer token by programs, or kept by the browser in a cookie set by the
/ui login form (HttpOnly, SameSite=Strict: a page of another site can neither read it nor
make the browser send it with a replay request).

Message metadata carries no clinical payload and no patient identity, but it names senders,
documents and failures, and a replay moves messages: none of it is for anyone on the network.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from gateway.api.bearer import bearer, verified_caller
from gateway.records.access import Caller, CallerKind

COOKIE = "passerelle_operator"
REQUIRED = "an operator token is required"


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
    """FastAPI dependency: the bearer token, else the /ui login cookie."""
    token = credentials.credentials if credentials else request.cookies.get(COOKIE)
    return operator_from(request, token)


Operator = Annotated[Caller, Depends(operator)]
