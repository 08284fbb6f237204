"""Who may send: the senders file (GATEWAY_SENDERS_FILE), read once at start.

    senders:
      - id: labo-tilleuls              # becomes Submission.sender and the envelope's sender
        api_key_sha256: 9f86d0…        # sha256 hex of the API key (HTTP: X-API-Key header)
        cert_cn: labo-tilleuls.example # client certificate common name (MLLP/HTTPS over mTLS)
        document_types: ["11502-2", "ORU^R01"]   # LOINC type codes, HL7v2 message types; "*"
        facilities: ["1750000001", "LABO-TILLEULS"]  # FINESS/organisation ids, MSH-4; "*"
        max_connections: 4
        signing_subject: "CN=Labo Tilleuls signature,O=Laboratoire des Tilleuls,C=FR"

Keys are stored hashed and compared in constant time; a sender needs at least one credential.

``facilities`` are the organisations the sender may submit for: a document's custodian (the
organisation responsible for it) must be one of them; a document naming no custodian needs
every organisation it names granted (gateway.security.authorisation).

``signing_subject`` is the subject (RFC 4514) of the certificate the sender signs documents
with: a signature made with any other certificate is refused, even one from a trusted CA. A
sender that must sign (GATEWAY_SIGNED_SENDERS) needs one: ``load(path, must_sign)`` refuses
the file without it, and a signature from such a sender is refused (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from gateway.errors import ConfigError
from gateway.signing.trust import SignerIdentity

ANY = "*"


@dataclass(frozen=True, slots=True)
class Sender:
    id: str
    api_key_sha256: str | None
    cert_cn: str | None
    document_types: frozenset[str]
    facilities: frozenset[str]
    max_connections: int = 4
    signing_identity: SignerIdentity | None = None  # the certificate its signatures must use

    def may_send_type(self, document_type: str | None) -> bool:
        return ANY in self.document_types or document_type in self.document_types

    def ungranted(self, facilities: set[str]) -> set[str]:
        """Those of ``facilities`` the sender may not submit for (none: all are granted)."""
        return set() if ANY in self.facilities else facilities - self.facilities


class SenderRegistry:
    def __init__(self, senders: list[Sender]) -> None:
        self._by_id = {s.id: s for s in senders}
        self._by_cn = {s.cert_cn: s for s in senders if s.cert_cn}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Sender]:
        return iter(self._by_id.values())

    def get(self, sender_id: str) -> Sender | None:
        return self._by_id.get(sender_id)

    def by_api_key(self, key: str) -> Sender | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        found = None
        for sender in self._by_id.values():  # every entry compared: no timing shortcut
            if sender.api_key_sha256 and hmac.compare_digest(digest, sender.api_key_sha256):
                found = sender
        return found

    def by_cert_cn(self, cn: str | None) -> Sender | None:
        return self._by_cn.get(cn) if cn else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load(path: Path, must_sign: Callable[[str], bool] | None = None) -> SenderRegistry:
    """The registry in ``path``; ``must_sign(sender_id)`` (the signature policy, e.g.
    ``SenderPolicy.requires``) makes a sender that must sign without a signing_subject an
    error: its signatures could not be told from any other holder's of a trusted certificate."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read senders file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    entries = (data or {}).get("senders") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty 'senders' list")
    senders = [_sender(i, e, path) for i, e in enumerate(entries, start=1)]
    ids = [s.id for s in senders]
    cns = [s.cert_cn for s in senders if s.cert_cn]
    if len(set(ids)) != len(ids) or len(set(cns)) != len(cns):
        raise ConfigError(f"{path}: sender ids and certificate names must be unique")
    unbound = [
        s.id for s in senders if s.signing_identity is None and must_sign and must_sign(s.id)
    ]
    if unbound:
        raise ConfigError(
            f"{path}: senders {', '.join(unbound)} must sign (GATEWAY_SIGNED_SENDERS) but name "
            "no signing_subject: name the subject of the certificate each signs with"
        )
    return SenderRegistry(senders)


def _sender(index: int, entry: object, path: Path) -> Sender:
    where = f"{path}: sender #{index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise ConfigError(f"{where}: needs an 'id'")
    key_hash = entry.get("api_key_sha256")
    if key_hash is not None and (
        not isinstance(key_hash, str) or len(key_hash) != 64 or not _is_hex(key_hash)
    ):
        raise ConfigError(f"{where}: api_key_sha256 must be 64 hex characters")
    if not key_hash and not entry.get("cert_cn"):
        raise ConfigError(f"{where}: needs api_key_sha256 or cert_cn")
    lists = {}
    for name in ("document_types", "facilities"):
        value = entry.get(name)
        if not isinstance(value, list) or not value:
            raise ConfigError(f'{where}: {name} must be a non-empty list ("*" for any)')
        lists[name] = frozenset(str(v) for v in value)
    max_conn = entry.get("max_connections", 4)
    if not isinstance(max_conn, int) or max_conn <= 0:
        raise ConfigError(f"{where}: max_connections must be a positive integer")
    subject = entry.get("signing_subject")
    try:
        identity = SignerIdentity.parse(subject) if subject is not None else None
    except ValueError as exc:
        raise ConfigError(f"{where}: signing_subject: {exc}") from None
    return Sender(
        id=entry["id"],
        api_key_sha256=key_hash.lower() if key_hash else None,
        cert_cn=entry.get("cert_cn"),
        document_types=lists["document_types"],
        facilities=lists["facilities"],
        max_connections=max_conn,
        signing_identity=identity,
    )


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
