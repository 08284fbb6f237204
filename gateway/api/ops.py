"""Operations: liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["operations"])


@router.get("/health", summary="The process is up")
def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="Broker and record store reachable, topology declared")
def ready(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks = {"broker": services.publisher.ready, "store": services.store.ping()}
    ok = all(checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)
