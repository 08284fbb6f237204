"""Structured logs that cannot carry patient data.

Log calls pass fields as keyword arguments through ``log(event, **fields)``; only fields on the
allow-list are written, everything else is dropped and counted. Raw messages, envelopes,
names and identifiers of patients have no field to travel in.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from pathlib import Path

ALLOWED_FIELDS = frozenset(
    {
        "trace_id",
        "document_id",
        "sender",
        "transport",
        "kind",
        "status",
        "rejection",
        "rules",
        "destinations",
        "duration_ms",
        "size",
        "queue",
        "routing_key",
        "attempt",
        "delay_ms",
        "reason",
        "peer",
        "address",
        "count",
        "error",
        "key_id",
        "type_code",
        "outcome",
        "component",
        "url",
        "version",
        "message_type",
        "control_id",
        "where",  # code locations of a failure (file:line function), never its message
        "operator",  # the name in an operator's token: staff, never a patient
    }
)

_logger = logging.getLogger("gateway")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        return f"{record.levelname.lower():7} {record.getMessage()} {fields}".rstrip()


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep libraries from logging what the allow-list would never let through, even at DEBUG."""
    # Libraries log connection chatter (and pika can log frames); keep them quiet.
    # signxml logs whole canonicalised documents (patient data) at DEBUG.
    for noisy in ("uvicorn.access", "sqlalchemy", "alembic", "signxml"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika reports every failed socket at ERROR with addresses and stack context; the broker
    # modules translate those failures into their own events, so pika itself stays silent.
    logging.getLogger("pika").setLevel(logging.CRITICAL)


def log(event: str, level: int = logging.INFO, **fields: object) -> None:
    safe = {k: v for k, v in fields.items() if k in ALLOWED_FIELDS and v is not None}
    if len(safe) != len([v for v in fields.values() if v is not None]):
        safe["dropped_fields"] = sorted(set(fields) - ALLOWED_FIELDS)
    _logger.log(level, event, extra={"fields": safe})


def frames(exc: BaseException) -> list[str]:
    """The last frames of a failure as ``file:line function``: enough to find the bug, and no
    exception message, which may quote the document (patient data never goes to logs)."""
    return [
        f"{Path(f.filename).name}:{f.lineno} {f.name}"
        for f in traceback.extract_tb(exc.__traceback__)[-4:]
    ]
