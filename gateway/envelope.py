"""The envelope: the one normalised description of a document, whatever format it came in.

Field names follow XDS document-entry metadata (``type_code``, ``format_code``,
``confidentiality``, ``creation_time`` …) so that routing rules, the record store and operators
speak the same words. The envelope travels in every AMQP message beside the payload (see
docs/message-format.md). It carries patient identity, so it is never logged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.findings import Finding


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value: ``code`` in the code system ``system`` (an OID)."""

    code: str
    system: str = ""
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """A person or organisation named by a national identifier.

    ``id_system`` is the OID of the identifier (RPPS/ADELI 1.2.250.1.71.4.2.1, FINESS/SIRET
    1.2.250.1.71.4.2.2, …).
    """

    id: str | None = None
    id_system: str | None = None
    name: str | None = None
    role: Code | None = None
    organisation: Party | None = None


@dataclass(frozen=True, slots=True)
class Patient:
    """The patient the document is about: INS and the demographics used to check it."""

    ins: str | None = None
    ins_system: str | None = None  # INS OID: 1.2.250.1.213.1.4.8 (NIR), .10/.13 test, .9 NIA
    family_name: str | None = None
    given_names: str | None = None
    birth_date: str | None = None
    gender: str | None = None
    local_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """How the gateway signed the document (filled by the signing step)."""

    key_id: str
    algorithm: str
    signed_at: str
    form: str  # "xades-bes-enveloped", "xades-bes-detached", …
    signature: str | None = None  # detached signature document, when it travels beside


@dataclass(frozen=True, slots=True)
class Envelope:
    """Normalised metadata of one document."""

    document_id: str  # XDS uniqueId: ``root^extension`` or ``root``
    source_kind: str  # "cda" or "hl7v2"
    content_type: str
    sha256: str  # of the payload bytes as published
    size: int
    sender: str
    received_at: str  # ISO 8601, UTC
    trace_id: str
    action: str = "create"  # "create", "replace", "delete"
    set_id: str | None = None
    version: int | None = None
    replaces: str | None = None  # document id of the version this one replaces
    patient: Patient = field(default_factory=Patient)
    title: str | None = None
    type_code: Code | None = None
    class_code: Code | None = None
    format_code: Code | None = None
    confidentiality: tuple[Code, ...] = ()
    language_code: str | None = None
    creation_time: str | None = None
    service_start: str | None = None
    service_stop: str | None = None
    authors: tuple[Party, ...] = ()
    custodian: Party | None = None
    legal_authenticator: Party | None = None
    facility: Party | None = None
    facility_type_code: Code | None = None
    practice_setting_code: Code | None = None
    flags: dict[str, bool] = field(default_factory=dict)  # MetaDMPMSS: DESTDMP, MASQUE_PS …
    # names of the coded fields above whose code is outside its national value set (kept as is)
    local_codes: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)  # anything else routing may match
    signature: SignatureInfo | None = None
    warnings: tuple[Finding, ...] = ()

    @property
    def confidentiality_codes(self) -> frozenset[str]:
        return frozenset(c.code for c in self.confidentiality)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        return _from_plain(cls, data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        return cls.from_dict(json.loads(text))


_SCALARS = frozenset({str, int, float, bool})
_EMPTY = (None, (), {})


@functools.cache
def _field_names(tp: type) -> tuple[str, ...] | None:
    """A dataclass's field names, once per class (``dataclasses.fields`` and ``is_dataclass``
    per value were most of the cost of encoding an envelope, once per published message)."""
    if dataclasses.is_dataclass(tp):
        return tuple(f.name for f in dataclasses.fields(tp))
    return None


def to_plain(value: Any) -> Any:
    """The JSON form of an envelope or any part of it; empty fields are left out."""
    tp = type(value)
    if tp in _SCALARS:
        return value
    if isinstance(value, Finding):
        return value.to_dict()
    names = _field_names(tp)
    if names is not None:
        plain = {}
        for name in names:
            item = getattr(value, name)
            if item not in _EMPTY:
                plain[name] = to_plain(item)
        return plain
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def _from_plain(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from its JSON form (the inverse of ``to_plain``)."""
    return None if data is None else _decoder(tp)(data)


def _same(data: Any) -> Any:
    return data


@functools.cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """The function that rebuilds a (non-None) value of type ``tp`` from its JSON form, made
    once per type: looking at the type's annotations for every value (``get_origin``,
    ``is_dataclass``, resolving hints) cost most of decoding an envelope, which the record
    consumer does for every delivery."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decoder(inner[0])
    if tp is Finding:
        return Finding.from_dict
    if dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        item = _decoder(item_type)
        return lambda data: tuple(None if v is None else item(v) for v in data)
    if origin is dict:
        return dict
    return _same


def _dataclass_decoder(tp: type) -> Callable[[dict[str, Any]], Any]:
    # The field decoders are looked up at the first call, not here: a class may name itself
    # (Party.organisation), and its own decoder is cached only once this returns.
    fields: dict[str, Callable[[Any], Any]] = {}

    def decode(data: dict[str, Any]) -> Any:
        if not fields:
            hints = typing.get_type_hints(tp)
            fields.update({name: _decoder(hint) for name, hint in hints.items()})
        return tp(
            **{k: None if v is None else fields[k](v) for k, v in data.items() if k in fields}
        )

    return decode
