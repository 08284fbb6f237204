"""TLS contexts for the listeners, and who a verified client certificate names."""

from __future__ import annotations

import ssl
from pathlib import Path

from gateway.errors import ConfigError


def server_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """TLS 1.2+ server context; with ``client_ca``, a client certificate signed by it is
    required (mutual TLS) and the handshake fails without one."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS material ({cert}, {key}, {client_ca}): {exc}") from None
    return context


def common_name(peercert: dict | None) -> str | None:
    """The subject CN of a verified peer certificate (ssl's getpeercert() form)."""
    for rdn in (peercert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return None
