"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])


@router.get("/health", summary="The process is up")
def health() -> dict:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Broker and record store reachable, topology declared, filing process consuming",
)
def ready(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks = {"broker": services.publisher.ready, "store": services.store.ping()}
    if services.filing is not None:
        checks["filing"] = services.filing.ready()
    if services.probe is not None:
        state = services.probe.state()
        checks["topology"] = state.declared
        missing = list(state.missing)
    else:
        missing = []
    ok = all(checks.values())
    body: dict = {"ready": ok, "checks": checks}
    if missing:
        body["missing"] = missing
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics (text exposition format)")
def metrics(request: Request) -> Response:
    return Response(request.app.state.services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
