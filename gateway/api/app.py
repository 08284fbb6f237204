"""create_app(services): the FastAPI application. Nothing is created at import."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api import inbound, messages, ops, records, ui


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
    return app
