"""The AMQP message formats of a document (docs/message-format.md). Pure.

``passerelle.document/1``, one JSON object:

    {"format": "passerelle.document/1",
     "envelope": {...},                       the Envelope, JSON form
     "seal": "<hex>",                         HMAC of routed + envelope (gateway.signing.seal)
     "routed": ["patient-record", ...],       where the gateway routed the document
     "payload": "<base64>",                   the document bytes, as signed and hashed
     "attachments": [{"role", "content_type", "data": "<base64>"}]}

``passerelle.document/2``, the same parts framed: one line of JSON naming each part's size,
then the parts' bytes as they are, payload first (no base64 to encode, decode and scan):

    {"format": "passerelle.document/2", "envelope": {...}, "seal": "<hex>", "routed": [...],
     "payload": {"size": N}, "attachments": [{"role", "content_type", "size": M}]}
    <newline><N bytes><M bytes>...

``passerelle.document/3``, the /2 line as it is, then the parts' bytes as one zstd frame
(sizes on the line are the parts' own): a converted lab report is a tenth of its /2 size, so
the broker writes, and rolls its quorum WAL over, that much less.

A destination says which one it takes (routing.yaml ``format``); ``decode`` reads all three.
The seal and the destinations it covers are in the body, not in AMQP headers: moving a message
to retry, parking or replay rebuilds its headers (``moved``) and keeps its body byte for byte.
Every destination of one format gets the same body: ``routed`` is the whole routing decision,
not the destination a copy was published to.

AMQP properties: message_id = document id (idempotency key), correlation_id = trace id,
persistent delivery, type "document". Headers repeat a few routing facts that carry no patient
data (source kind, type code, sender) so operators can filter without decoding bodies.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pika
import zstandard

from gateway.envelope import Envelope
from gateway.outcome import Attachment, Rejected
from gateway.signing import seal as envelope_seal
from gateway.submission import Submission

FORMAT = "passerelle.document/1"
FRAMED_FORMAT = "passerelle.document/2"
COMPRESSED_FORMAT = "passerelle.document/3"
FORMATS = (FORMAT, FRAMED_FORMAT, COMPRESSED_FORMAT)
DEIDENTIFIED_FORMAT = "passerelle.deidentified/1"  # allow-listed envelope fields, no payload
REJECTION_FORMAT = "passerelle.rejection/1"  # a refused input with its validation report
CONTENT_TYPE = "application/json"
CONTENT_TYPES = {
    FORMAT: CONTENT_TYPE,
    FRAMED_FORMAT: "application/vnd.passerelle.document-2",
    COMPRESSED_FORMAT: "application/vnd.passerelle.document-3",
}
# zstd level 1: a 36 KB converted CR-BIO -> 3.6 KB in 0.02 ms, a 130 KB CR-BIO carrying a
# base64 PDF -> 82 KB in 0.13 ms (higher levels gain 1-2 % for 30 % more time).
_ZSTD_LEVEL = 1
# The most a /3 body may decode to: RabbitMQ's own ceiling on a message (max_message_size,
# 128 MiB by default), so a /3 body never stands for more than a /2 body could carry.
MAX_DECODED_BYTES = 128 * 1024 * 1024


class MalformedMessage(ValueError):
    """The body is not a Passerelle document message."""


@dataclass(frozen=True, slots=True)
class DocumentMessage:
    envelope: Envelope
    payload: bytes
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A decoded document message with what its seal is checked against: the envelope's JSON
    form as carried (``envelope_json`` gives its bytes), the destinations the message says the
    gateway routed it to (None: it names none) and the seal (None: it had none). ``routed`` is
    only the gateway's word once ``sealed_with`` said so."""

    message: DocumentMessage
    envelope_plain: dict
    seal: str | None
    routed: tuple[str, ...] | None = None

    def envelope_json(self) -> bytes:
        """The envelope's bytes as the encoder sealed them. Not a slice of the body: the compact
        JSON of the value the body's parser returned, which is the very value filed. For the
        JSON the encoder writes, this is the bytes it wrote: ``json.loads`` keeps key order,
        strings, integers, booleans and nulls, and floats round-trip by repr, so ``_json`` of
        what it returns is ``_json`` of what was encoded. A slice would have to agree with
        ``json.loads`` on which member is "the" envelope (it keeps the last of duplicate keys)."""
        return _json(self.envelope_plain)

    def sealed_with(self, key: bytes) -> bool:
        return envelope_seal.sealed(key, self.routed, self.envelope_json(), self.seal)


def encode(
    message: DocumentMessage,
    fmt: str = FORMAT,
    plain: dict | None = None,
    seal_key: bytes | None = None,
    routed: Sequence[str] = (),
) -> bytes:
    """``message`` in the format ``fmt`` (one of ``FORMATS``). ``plain``: its envelope's JSON
    form (``Envelope.to_dict()``) when the caller has it already. ``seal_key``: the envelope
    seal key (gateway.signing.seal); without it the body has no seal, which record consumers
    refuse. ``routed``: every destination the gateway routed the document to, sealed with the
    envelope and carried beside the seal (with a seal only); a record consumer refuses a body
    whose list names none of the destinations it files for."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown message format {fmt!r}")
    plain = plain if plain is not None else message.envelope.to_dict()
    envelope_json = _json(plain)  # once per body; the seal is of these very bytes
    seal = b""
    if seal_key is not None:
        routed = tuple(routed)
        mac = envelope_seal.seal(seal_key, routed, envelope_json)
        seal = b'"seal":"%s","routed":%s,' % (mac.encode("ascii"), _routed_json(routed))
    if fmt == FORMAT:
        return _json_object(message, envelope_json, seal)
    return _framed(message, envelope_json, seal, compressed=fmt == COMPRESSED_FORMAT)


def _framed(
    message: DocumentMessage, envelope_json: bytes, seal: bytes, compressed: bool = False
) -> bytes:
    """The first line cannot end early: compact JSON escapes every newline inside strings,
    and no byte of a multi-byte UTF-8 character is a newline. It is what ``json.dumps`` of
    the whole line (compact, non-ASCII kept) gives, the envelope's JSON spliced in."""
    attachments = b",".join(
        b'{"role":%s,"content_type":%s,"size":%d}'
        % (_json(a.role), _json(a.content_type), len(a.data))
        for a in message.attachments
    )
    head = b'{"format":"%s","envelope":%s,%s"payload":{"size":%d},"attachments":[%s]}' % (
        (COMPRESSED_FORMAT if compressed else FRAMED_FORMAT).encode("ascii"),
        envelope_json,
        seal,
        len(message.payload),
        attachments,
    )
    parts = [message.payload, *(a.data for a in message.attachments)]
    if compressed:  # one frame, its content size in its header (decode checks it first)
        parts = [zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(b"".join(parts))]
    return b"".join([head, b"\n", *parts])


def _json_object(message: DocumentMessage, envelope_json: bytes, seal: bytes) -> bytes:
    """The /1 JSON, byte for byte what ``json.dumps`` of the whole object
    (compact separators, non-ASCII kept) gives. The base64 strings need no JSON escaping, so
    they are spliced in as bytes: the JSON encoder would otherwise scan every character of a
    130 KB document's base64 on the event loop, then encode the result again."""
    attachments = b",".join(
        b'{"role":%s,"content_type":%s,"data":"%s"}'
        % (_json(a.role), _json(a.content_type), base64.b64encode(a.data))
        for a in message.attachments
    )
    return b'{"format":%s,"envelope":%s,%s"payload":"%s","attachments":[%s]}' % (
        _json(FORMAT),
        envelope_json,
        seal,
        base64.b64encode(message.payload),
        attachments,
    )


def _json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@functools.lru_cache(maxsize=128)  # the same few routing decisions, document after document
def _routed_json(routed: tuple[str, ...]) -> bytes:
    return _json(list(routed))


def decode(body: bytes) -> DocumentMessage:
    """A document message of any format; MalformedMessage when it is none."""
    return decode_sealed(body).message


def decode_sealed(body: bytes) -> ReceivedMessage:
    """``decode``, with the envelope as carried and the seal, for the consumer to check."""
    try:
        head, newline, parts = body.partition(b"\n")
        if newline:  # /2; or /1 written with line breaks, which the first line alone is not
            try:
                data = json.loads(head)
            except (ValueError, RecursionError):
                data = None
            if isinstance(data, dict) and data.get("format") in (FRAMED_FORMAT, COMPRESSED_FORMAT):
                sizes = _declared_sizes(data)
                if data["format"] == COMPRESSED_FORMAT:
                    parts = _decompressed(parts, sum(sizes))
                return _received(data, _unframed(data, parts, sizes))
        data = json.loads(body)
        if data.get("format") != FORMAT:
            raise MalformedMessage(f"unknown message format {data.get('format')!r}")
        message = DocumentMessage(
            envelope=Envelope.from_dict(data["envelope"]),
            payload=base64.b64decode(data["payload"], validate=True),
            attachments=tuple(
                Attachment(a["role"], a["content_type"], base64.b64decode(a["data"]))
                for a in data.get("attachments", [])
            ),
        )
        return _received(data, message)
    except MalformedMessage:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the interpreter's stack
        raise MalformedMessage(f"not a document message: {type(exc).__name__}") from None


def _received(data: dict, message: DocumentMessage) -> ReceivedMessage:
    seal = data.get("seal")
    if seal is not None and not isinstance(seal, str):
        raise MalformedMessage("the seal is not a string")
    routed = data.get("routed")
    if routed is not None:
        if not isinstance(routed, list) or not all(isinstance(d, str) for d in routed):
            raise MalformedMessage("the routed destinations are not a list of names")
        routed = tuple(routed)
    return ReceivedMessage(message, data["envelope"], seal, routed)


def _declared_sizes(head: dict) -> list[int]:
    sizes = [d["size"] for d in (head["payload"], *head.get("attachments", []))]
    if any(type(n) is not int or n < 0 for n in sizes):
        raise MalformedMessage("a part size is not a non-negative integer")
    return sizes


def _decompressed(frame: bytes, total: int) -> bytes:
    """The parts of a /3 body, ``total`` bytes as its line declares. The frame's header says
    how much it decodes to; that must be ``total``, and within MAX_DECODED_BYTES, before
    anything is allocated (zstd sizes its output from the header): a small body cannot expand
    past its word."""
    if total > MAX_DECODED_BYTES:
        raise MalformedMessage(f"the parts declared ({total} bytes) exceed {MAX_DECODED_BYTES}")
    try:
        if zstandard.frame_content_size(frame) != total:
            raise MalformedMessage("the compressed parts do not decode to the sizes declared")
        # what it decodes to is cut by _unframed, which refuses it unless it is exactly total
        return zstandard.ZstdDecompressor().decompress(frame, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise MalformedMessage(f"the compressed parts are not one zstd frame: {exc}") from None


def _unframed(head: dict, parts: bytes, sizes: list[int]) -> DocumentMessage:
    """The parts named in ``head`` (of ``sizes``) cut from ``parts``: their sizes must cover it
    exactly (a truncated or padded body is refused, not filed short)."""
    if sum(sizes) != len(parts):
        raise MalformedMessage(
            f"the parts declared ({sum(sizes)} bytes) do not match the body ({len(parts)} bytes)"
        )
    cut, start = [], 0
    for n in sizes:
        cut.append(parts[start : start + n])
        start += n
    return DocumentMessage(
        envelope=Envelope.from_dict(head["envelope"]),
        payload=cut[0],
        attachments=tuple(
            Attachment(a["role"], a["content_type"], data)
            for a, data in zip(head.get("attachments", []), cut[1:], strict=True)
        ),
    )


def headers(envelope: Envelope) -> dict[str, str]:
    """Routing facts for operators; never patient data."""
    out = {
        "x-source-kind": envelope.source_kind,
        "x-sender": envelope.sender,
        "x-received-at": envelope.received_at,
    }
    if envelope.type_code:
        out["x-type-code"] = envelope.type_code.code
    return out


# What a de-identified copy keeps of the envelope (docs/message-format.md), by allow-list: a
# field added to the envelope later stays out until someone decides it cannot identify the
# patient. Kept: ids of the document and of the message, who sent, wrote and signed it (ids and
# codes), codes, dates, sizes, flags. Left out: the patient; the MSSanté addresses (a patient's
# mailbox is built on the INS); free text a sender writes (title, a code's display name, a
# party's name, warnings), which may carry a name or an identifier.
_KEPT_SCALARS = (
    "document_id", "source_kind", "content_type", "sha256", "size", "sender", "received_at",
    "trace_id", "action", "set_id", "version", "replaces", "language_code", "creation_time",
    "service_start", "service_stop",
)  # fmt: skip
_KEPT_CODES = (
    "type_code", "class_code", "format_code", "facility_type_code", "practice_setting_code",
)  # fmt: skip
_KEPT_PARTIES = ("custodian", "legal_authenticator", "facility")
_KEPT_METADATA = (
    "template_ids", "level", "converted_from", "hl7_message_type", "hl7_version",
    "hl7_sending_facility",
)  # fmt: skip
_KEPT_SIGNATURE = ("key_id", "algorithm", "signed_at", "form")  # not the signature document


def deidentified(plain: dict) -> dict:
    """The allow-listed part of an envelope's JSON form (``Envelope.to_dict()``)."""
    kept = {k: plain[k] for k in _KEPT_SCALARS if isinstance(plain.get(k), str | int)}
    for name in _KEPT_CODES:
        if isinstance(plain.get(name), dict):
            kept[name] = _code(plain[name])
    if isinstance(plain.get("confidentiality"), list):
        kept["confidentiality"] = [
            _code(c) for c in plain["confidentiality"] if isinstance(c, dict)
        ]
    if isinstance(plain.get("authors"), list):
        kept["authors"] = [_party(p) for p in plain["authors"] if isinstance(p, dict)]
    for name in _KEPT_PARTIES:
        if isinstance(plain.get(name), dict):
            kept[name] = _party(plain[name])
    if isinstance(plain.get("flags"), dict):
        kept["flags"] = {k: v for k, v in plain["flags"].items() if isinstance(v, bool)}
    if isinstance(plain.get("local_codes"), list):
        coded = (*_KEPT_CODES, "confidentiality")  # names of fields, nothing else
        kept["local_codes"] = [c for c in plain["local_codes"] if c in coded]
    metadata = plain.get("metadata")
    if isinstance(metadata, dict):
        kept["metadata"] = {k: metadata[k] for k in _KEPT_METADATA if k in metadata}
    signature = plain.get("signature")
    if isinstance(signature, dict):
        kept["signature"] = {k: signature[k] for k in _KEPT_SIGNATURE if k in signature}
    return {k: v for k, v in kept.items() if v not in (None, [], {})}


def _code(code: dict) -> dict:
    return {k: code[k] for k in ("code", "system") if isinstance(code.get(k), str)}


def _party(party: dict) -> dict:
    """A professional or organisation by identifier and role; never a name."""
    kept = {k: party[k] for k in ("id", "id_system") if isinstance(party.get(k), str)}
    if isinstance(party.get("role"), dict):
        kept["role"] = _code(party["role"])
    if isinstance(party.get("organisation"), dict):
        kept["organisation"] = _party(party["organisation"])
    return kept


def encode_deidentified(envelope: Envelope, plain: dict | None = None) -> bytes:
    """For destinations with ``strip: [patient]``: the envelope's allow-listed fields
    (``deidentified``), without payload, attachments nor signature document, which carry the
    document itself, which names the patient. ``plain`` as for ``encode``."""
    plain = plain if plain is not None else envelope.to_dict()
    body = {"format": DEIDENTIFIED_FORMAT, "envelope": deidentified(plain)}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_rejection(submission: Submission, rejected: Rejected) -> bytes:
    """What the sender's integration team needs: the input as received and why it was refused."""
    body = {
        "format": REJECTION_FORMAT,
        "trace_id": submission.trace_id,
        "sender": submission.sender,
        "transport": submission.transport,
        "received_at": submission.received_at.isoformat(timespec="milliseconds"),
        "rejection": rejected.kind.value,
        "source_kind": rejected.source_kind,
        "report": rejected.report.to_dict(),
        "input": base64.b64encode(submission.raw).decode("ascii"),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def moved(properties: pika.BasicProperties, headers: dict) -> pika.BasicProperties:
    """The properties of a message being moved to another queue (retry, parking, replay):
    same ids and type, persistent, with ``headers`` instead of its own."""
    return pika.BasicProperties(
        content_type=properties.content_type,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        type=properties.type,
        headers=headers,
    )
