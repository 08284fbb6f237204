"""Client certificates of HTTPS connections, for the request handlers.

uvicorn verifies the client certificate during the handshake (mutual TLS) but does not put it
in the ASGI scope. This HTTP protocol records each connection's verified certificate name by
peer address for as long as the connection lives; the handlers look it up by request.client.
It extends the gateway's bounded HTTP protocol (gateway.api.http_protocol).
"""

from __future__ import annotations

from gateway.api.http_protocol import BoundedHttpProtocol
from gateway.security.tls import common_name


class PeerNames:
    """Peer address → certificate common name, for open TLS connections."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, int], str] = {}

    def get(self, peer: tuple[str, int] | None) -> str | None:
        return self._names.get(tuple(peer)) if peer else None

    def protocol(self, head_timeout_s: float = 30.0) -> type[BoundedHttpProtocol]:
        """The HTTP protocol class to serve with; a request's head must come whole within
        ``head_timeout_s`` of its first byte (GATEWAY_REQUEST_TIMEOUT)."""
        names = self._names

        class CertificateRecordingProtocol(BoundedHttpProtocol):
            def connection_made(self, transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                ssl_object = transport.get_extra_info("ssl_object")
                cn = common_name(ssl_object.getpeercert()) if ssl_object is not None else None
                if cn and self.client:
                    names[self.client] = cn

            def connection_lost(self, exc: Exception | None) -> None:
                if self.client:
                    names.pop(self.client, None)
                super().connection_lost(exc)

        CertificateRecordingProtocol.head_timeout_s = head_timeout_s
        return CertificateRecordingProtocol
