"""What a consumer may say about a failure, and whether trying again could help. Pure.

A handler's exception ends up in a message header (names.FAILURE, kept in the parking queue
and shown to operators) and in logs. Neither may carry patient data, yet a library's message
often quotes the data it refused: SQLAlchemy appends the statement and its parameters (the
patient's INS among them), PostgreSQL quotes the value in ``invalid input syntax … "x"`` or
the key in ``Key (id)=(…) already exists``. So:

- a database error is described by its classes and SQLSTATE only, never its text;
- any other error by its class and the first line of its message, with INS-shaped runs masked
  (our own messages — Poison's reasons — name rules and documents, not patients; a foreign
  one may quote anything).

``permanent`` says which failures are deterministic refusals: the same message fails the same
way whatever the wait (Poison, or the database refusing a value: SQLSTATE class 22, "data
exception", e.g. a value too long for its column). Those are parked at once, not retried.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import DataError, StatementError

MAX_TEXT = 500
# An INS as written: the 15 characters of a NIR/NIA (13 digits + 2-digit key; the department
# may be Corsica's 2A/2B), wherever it appears — glued to letters (``INS184127505612355``,
# ``P184127505612355``) or split by single spaces (``1 84 12 75 056 123 55``) — but not inside
# a longer run of digits. Shorter runs are left alone: 13- and 14-digit control ids
# (timestamps) are common and tracking must still tell them apart; the INS a message carries
# always has its key. The same shape tracking masks (tracking.events); over-masking an
# ordinary 15-character id is the safe error.
_GAP = "[ \u00a0]?"  # at most one space (or no-break space) between two characters
_INS_LIKE = re.compile(
    "(?<![0-9])"
    + _GAP.join(["[0-9]"] * 5)
    + _GAP
    + f"(?:[0-9]{_GAP}[0-9]|2{_GAP}[AaBb])"
    + _GAP
    + _GAP.join(["[0-9]"] * 8)
    + "(?![0-9])"
)
DATA_EXCEPTION_CLASS = "22"  # SQLSTATE class: the value itself is refused


def mask_ins(text: str) -> str:
    """``text`` with every INS-shaped run replaced by asterisks but its last two characters
    (spaces inside the run included: the masked form does not tell how it was written)."""
    return _INS_LIKE.sub(lambda m: "*" * (len(m.group()) - 2) + m.group()[-2:], text)


def describe(exc: BaseException) -> str:
    """``ErrorClass: message`` safe for headers and logs (see the module docstring)."""
    name = type(exc).__name__
    db = _database_error(exc)
    if db is not None:
        details = [type(db).__name__] if db is not exc else []
        if state := _sqlstate(db):
            details.append(f"SQLSTATE {state}")
        return f"{name} ({', '.join(details)})" if details else name
    first_line = str(exc).strip().split("\n", 1)[0]
    text = f"{name}: {mask_ins(first_line)}" if first_line else name
    return text[:MAX_TEXT]


def permanent(exc: BaseException) -> bool:
    """Whether the database refused the data itself: retrying the same message cannot help."""
    if isinstance(exc, DataError):
        return True
    db = _database_error(exc)
    state = _sqlstate(db) if db is not None else None
    return bool(state) and state.startswith(DATA_EXCEPTION_CLASS)


def _database_error(exc: BaseException) -> BaseException | None:
    """The driver's exception behind ``exc`` when ``exc`` comes from the database, else None.

    SQLAlchemy's errors wrap the driver's (``orig``); a driver's own error (psycopg) carries a
    ``sqlstate``. Either way its text may quote statement parameters."""
    if isinstance(exc, StatementError):
        return exc.orig if exc.orig is not None else exc
    if isinstance(getattr(exc, "sqlstate", None), str) or type(exc).__module__.startswith(
        ("psycopg", "sqlite3", "sqlalchemy")
    ):
        return exc
    return None


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) and re.fullmatch(r"[0-9A-Z]{5}", state) else None
