"""One process: HTTP API, MLLP listener, publisher and record consumer, started and stopped
together. `gateway serve` runs it; tests run it in a thread on ephemeral ports."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import threading
from collections.abc import Callable

import uvicorn

from gateway import bootstrap
from gateway.adapters.hl7v2.listener import MllpListener
from gateway.api.app import create_app
from gateway.api.tls_peers import PeerNames
from gateway.config import Settings
from gateway.logs import log
from gateway.security.tls import server_context


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: bootstrap.Services | None = None
        self.http_address: tuple[str, int] | None = None
        self.mllp_address: tuple[str, int] | None = None
        self._server: uvicorn.Server | None = None
        self._stop_requested = False

    def request_stop(self) -> None:
        """Ask the runtime to stop (safe from any thread)."""
        self._stop_requested = True
        if self._server is not None:
            self._server.should_exit = True

    async def run(self, on_ready: Callable[[Runtime], None] | None = None) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        services = self.services = await asyncio.to_thread(bootstrap.start, s, loop)
        self._on_sighup(services)
        tls = (
            server_context(s.tls_cert, s.tls_key, s.tls_client_ca)
            if s.tls_cert and s.tls_key
            else None
        )
        listener = MllpListener(
            services.ingest.accept,
            s.max_document_bytes,
            s.mllp_idle_timeout_s,
            ssl_context=tls,
            senders=services.senders,
            limiter=services.connections,
            request_timeout_s=s.request_timeout_s,
        )
        try:
            self.mllp_address = await listener.start(s.mllp_addr.host, s.mllp_addr.port)
            app = create_app(services)
            peers = app.state.peer_names = PeerNames()
            config = uvicorn.Config(
                app,
                host=s.http_addr.host,
                port=s.http_addr.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_keep_alive=30,
                http=peers.protocol(s.request_timeout_s),
                **_uvicorn_tls(s),
            )
            server = self._server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.02)
            if serving.done():
                await serving  # raises what made it fail (port in use …)
                raise SystemExit("HTTP server could not start")
            self.http_address = server.servers[0].sockets[0].getsockname()[:2]
            if self._stop_requested:
                server.should_exit = True
            log(
                "gateway.started",
                address=f"http://{self.http_address[0]}:{self.http_address[1]}"
                f" mllp://{self.mllp_address[0]}:{self.mllp_address[1]}",
            )
            if on_ready:
                on_ready(self)
            await serving
        finally:
            await listener.close()
            await asyncio.to_thread(bootstrap.stop, services)
            log("gateway.stopped")

    @staticmethod
    def _on_sighup(services: bootstrap.Services) -> None:
        """SIGHUP reloads routing.yaml (only the main thread may handle signals)."""
        if services.reloader is None or threading.current_thread() is not threading.main_thread():
            return
        with contextlib.suppress(NotImplementedError, AttributeError, ValueError):  # no SIGHUP
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, services.reloader.request)


def _uvicorn_tls(s: Settings) -> dict:
    """uvicorn's TLS options: HTTPS when a certificate is set, client certificates required
    when a client CA is set (uvicorn builds its own context from these)."""
    if s.tls_cert is None or s.tls_key is None:
        return {}
    options: dict = {"ssl_certfile": str(s.tls_cert), "ssl_keyfile": str(s.tls_key)}
    if s.tls_client_ca is not None:
        options |= {"ssl_ca_certs": str(s.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options
