"""Caller identity for the records API and the operator endpoints: a small HMAC-signed
bearer token.

    v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1.<claims>"))>

Claims: ``kind`` (patient / professional / representative / operator), ``sub`` (INS, RPPS,
the representative's id or the operator's name), ``role`` (professionals: profession/specialty
code), ``iat``, ``exp``. It says who the caller is, nothing more: what they may do is decided
on every call, by records/access.py from the record itself (attending doctor, grants,
representatives) or by api/operator.py (operators only).

The secret is GATEWAY_TOKEN_SECRET, or else ``token.secret`` in the data directory, created on
first use (mode 0600) like the development signing key. `gateway token` mints tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path

from gateway import secret_file
from gateway.errors import ConfigError
from gateway.records.access import Caller, CallerKind

SECRET_FILE = "token.secret"  # noqa: S105 (a file name, not a secret)
MAX_TOKEN_CHARS = 4096
MIN_SECRET_CHARS = 32
DEFAULT_TTL_S = 8 * 3600


class InvalidToken(ValueError):
    """The token is malformed, forged or expired; the message says which (never echoes it)."""


def load_secret(data_dir: Path, configured: str | None = None) -> bytes:
    """The configured secret, or the one in ``data_dir`` (created on first use)."""
    if configured:
        if len(configured) < MIN_SECRET_CHARS:
            raise ConfigError(f"GATEWAY_TOKEN_SECRET: use at least {MIN_SECRET_CHARS} characters")
        return configured.encode()
    path = data_dir / SECRET_FILE
    try:
        if not path.exists():  # created whole or not at all: a racing process never reads it empty
            secret_file.create_once(path, secrets.token_hex(32) + "\n")
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read or create the token secret ({exc.strerror})"
        ) from None
    if len(secret) < MIN_SECRET_CHARS:  # an empty file would let anyone mint any token
        raise ConfigError(
            f"{path}: the token secret is shorter than {MIN_SECRET_CHARS} characters; delete "
            "the file to have a new one made, or set GATEWAY_TOKEN_SECRET"
        )
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def mint(
    secret: bytes, caller: Caller, ttl_s: int = DEFAULT_TTL_S, now: float | None = None
) -> str:
    now = time.time() if now is None else now
    claims = {"kind": caller.kind.value, "sub": caller.id, "iat": int(now), "exp": int(now + ttl_s)}
    if caller.role:
        claims["role"] = caller.role
    signed = "v1." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    return signed + "." + _b64(_mac(secret, signed))


def verify(secret: bytes, token: str, now: float | None = None) -> Caller:
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("token too long")
    if not token.isascii():  # a v1 token is base64url and dots; the MAC is over its ASCII
        raise InvalidToken("not a v1 token")
    version, _, rest = token.partition(".")
    body, _, mac = rest.partition(".")
    if version != "v1" or not body or not mac:
        raise InvalidToken("not a v1 token")
    try:
        given = _unb64(mac)
    except ValueError:
        raise InvalidToken("malformed signature") from None
    if not hmac.compare_digest(given, _mac(secret, f"v1.{body}")):
        raise InvalidToken("bad signature")
    try:
        claims = json.loads(_unb64(body))
        kind = CallerKind(claims["kind"])
        sub, exp, role = claims["sub"], claims["exp"], claims.get("role")
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed claims") from None
    if not isinstance(sub, str) or not sub or not isinstance(exp, int):
        raise InvalidToken("malformed claims")
    if exp <= (time.time() if now is None else now):
        raise InvalidToken("expired")
    return Caller(kind, sub, role if isinstance(role, str) else None)
