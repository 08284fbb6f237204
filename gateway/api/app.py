"""create_app(services): the FastAPI application. Nothing is created at import."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api import inbound, messages, ops, records, ui
from gateway.api.limits import BODY_BYTES, RequestLimits


def create_app(services) -> FastAPI:
    app = FastAPI(
        title="Passerelle",
        description="Interoperability gateway and document router for the shared health record",
        version="0.1.0",
    )
    app.state.services = services
    app.include_router(inbound.router)
    app.include_router(records.router)
    app.include_router(ops.router)
    app.include_router(messages.router)
    app.include_router(ui.router)
    settings = getattr(services, "settings", None)  # absent from some tests' services
    timeout_s = settings.request_timeout_s if settings is not None else 30.0
    app.add_middleware(RequestLimits, max_bytes=BODY_BYTES, timeout_s=timeout_s)
    return app
