"""Filing one document message into the record, inside one transaction.

- idempotent on the document id (same content: DUPLICATE; other content: CONFLICT);
- versions of one setId: the set row names the current version; a newer version supersedes it
  (the old one stays, as history); a stale version arriving late is filed as history and never
  becomes current (``placement`` decides, pure);
- ``action == "delete"``: the author's organisation withdraws a document (marked, not erased);
  a request from any other organisation is REFUSED;
- a current document the patient may see queues a notification in the outbox.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.broker.message import DocumentMessage
from gateway.envelope import Envelope
from gateway.records import audit
from gateway.records.schema import (
    document_authors,
    document_sets,
    documents,
    notifications,
    patients,
)

MASKED = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTATIVES = ("INVISIBLE_REPRESENTANTS_LEGAUX", "INVISIBLE_REP_LEGAUX")
NOTIFY_FILED = "document-filed"
NOTIFY_RELEASED = "document-released"


class Filing(enum.StrEnum):
    STORED = "stored"  # filed as the current version
    HISTORY = "history"  # filed as an older version: a newer one is already current
    DUPLICATE = "duplicate"  # same id, same content: already filed (redelivery, resend)
    CONFLICT = "conflict"  # same id (or same set and version), different content
    WITHDRAWN = "withdrawn"  # a deletion request marked the document withdrawn
    REFUSED = "refused"  # deletion requested by an organisation that is not the author's
    ORPHAN = "orphan"  # deletion request naming no filed document


class Placement(enum.StrEnum):
    CURRENT = "current"
    HISTORY = "history"
    CONFLICT = "conflict"


def placement(
    version: int | None,
    replaces: str | None,
    current_id: str | None,
    current_version: int | None,
) -> Placement:
    """Where a new document goes in its set. Without version numbers, only an explicit
    replacement of the current document makes it current: never overwrite on a guess."""
    if current_id is None:
        return Placement.CURRENT
    if version is not None and current_version is not None:
        if version > current_version:
            return Placement.CURRENT
        return Placement.HISTORY if version < current_version else Placement.CONFLICT
    return Placement.CURRENT if replaces == current_id else Placement.HISTORY


def flags(env: Envelope) -> dict[str, bool]:
    """Visibility flags from the confidentiality codes (JDV_J08) or the HL7v2 MetaDMPMSS flags."""
    codes = env.confidentiality_codes

    def on(*names: str) -> bool:
        return any(n in codes or env.flags.get(n) for n in names)

    return {
        "masked": on(MASKED),
        "invisible_patient": on(INVISIBLE_PATIENT),
        "invisible_representatives": on(*INVISIBLE_REPRESENTATIVES),
    }


def creation_date(ts: str | None) -> str | None:
    """YYYY-MM-DD from an HL7 timestamp (20261101093000+0100) or an ISO one."""
    digits = "".join(ch for ch in (ts or "")[:10] if ch.isdigit())
    if len(digits) < 8:
        return None
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"


def organisations(env: Envelope) -> set[str]:
    return {a.organisation.id for a in env.authors if a.organisation and a.organisation.id}


# Statements of the filing path built once: building one per call (``.values(**row)``,
# ``where(col == value)``) cost more CPU in SQLAlchemy than executing it
# (docs/performance.md); parameters go in at execution.
_SHA256_OF = sa.select(documents.c.sha256).where(
    documents.c.document_id == sa.bindparam("document_id")
)
_SET_FOR_UPDATE = (
    sa.select(document_sets)
    .where(document_sets.c.set_id == sa.bindparam("set_id"))
    .with_for_update()
)
_BIRTH_DATE_OF = sa.select(patients.c.birth_date).where(patients.c.ins == sa.bindparam("ins"))


def _already_filed(conn: sa.Connection, env: Envelope, sender: audit.Actor) -> Filing | None:
    """DUPLICATE or CONFLICT when this document id is already filed, else None."""
    existing = conn.execute(_SHA256_OF, {"document_id": env.document_id}).scalar_one_or_none()
    if existing is None:
        return None
    if existing == env.sha256:
        return Filing.DUPLICATE
    return _refuse(conn, env, sender, Filing.CONFLICT, "same id, different content")


def file_message(conn: sa.Connection, message: DocumentMessage, signature_status: str) -> Filing:
    env = message.envelope
    sender = audit.Actor("sender", env.sender)
    if env.action == "delete":
        return _withdraw(conn, env, sender)
    if (filed := _already_filed(conn, env, sender)) is not None:
        return filed
    now = datetime.now(UTC)
    ins = env.patient.ins
    set_id = env.set_id
    if env.replaces:
        replaced = conn.execute(
            sa.select(documents.c.set_id, documents.c.patient_ins).where(
                documents.c.document_id == env.replaces
            )
        ).first()
        if replaced is not None:
            if replaced.patient_ins != ins:
                return _refuse(conn, env, sender, Filing.CONFLICT, "replaces another patient's")
            set_id = set_id or replaced.set_id
    set_id = set_id or env.document_id
    head = conn.execute(_SET_FOR_UPDATE, {"set_id": set_id}).first()
    # Under the set lock, look again: a concurrent filer of this very document may have
    # committed while we waited (PostgreSQL READ COMMITTED shows its row now).
    if head is not None and (filed := _already_filed(conn, env, sender)) is not None:
        return filed
    if head is not None and head.patient_ins != (ins or ""):
        return _refuse(conn, env, sender, Filing.CONFLICT, "set belongs to another patient")
    place = placement(
        env.version,
        env.replaces,
        head.current_document_id if head else None,
        head.current_version if head else None,
    )
    if place is Placement.CONFLICT:
        return _refuse(conn, env, sender, Filing.CONFLICT, "version already filed under another id")
    visibility = flags(env)
    if place is Placement.CURRENT and head is not None:
        previous = conn.execute(
            sa.select(documents.c.masked, documents.c.status).where(
                documents.c.document_id == head.current_document_id
            )
        ).first()
        # The patient's choice to mask a document holds for its later versions.
        visibility["masked"] = visibility["masked"] or bool(previous and previous.masked)
        conn.execute(
            documents.update()
            .where(documents.c.document_id == head.current_document_id)
            .where(documents.c.status == "current")
            .values(status="superseded", superseded_by=env.document_id)
        )
    _upsert_patient(conn, env, now)
    conn.execute(
        documents.insert(),
        dict(
            document_id=env.document_id,
            set_id=set_id,
            version=env.version,
            patient_ins=ins,
            patient_ins_system=env.patient.ins_system,
            type_code=env.type_code.code if env.type_code else None,
            source_kind=env.source_kind,
            sender=env.sender,
            content_type=env.content_type,
            sha256=env.sha256,
            size=env.size,
            creation_time=env.creation_time,
            received_at=env.received_at,
            filed_at=now,
            trace_id=env.trace_id,
            envelope=env.to_json(),
            payload=message.payload,
            status="current" if place is Placement.CURRENT else "superseded",
            superseded_by=None if place is Placement.CURRENT else head.current_document_id,
            creation_date=creation_date(env.creation_time),
            facility_id=env.facility.id if env.facility else None,
            signature_status=signature_status,
            **visibility,
        ),
    )
    authors = [
        {
            "document_id": env.document_id,
            "author_id": a.id,
            "organisation_id": a.organisation.id if a.organisation else None,
        }
        for a in env.authors
    ]
    if authors:
        conn.execute(document_authors.insert(), authors)
    if place is Placement.CURRENT:
        values = {
            "current_document_id": env.document_id,
            "current_version": env.version,
            "updated_at": now,
        }
        if head is None:
            conn.execute(
                document_sets.insert(), dict(set_id=set_id, patient_ins=ins or "", **values)
            )
        else:
            conn.execute(
                document_sets.update().where(document_sets.c.set_id == set_id).values(**values)
            )
    filing = Filing.STORED if place is Placement.CURRENT else Filing.HISTORY
    if (
        filing is Filing.STORED
        and ins
        and not (visibility["masked"] or visibility["invisible_patient"])
    ):
        queue_notification(conn, ins, env.document_id, NOTIFY_FILED)
    audit.record(conn, sender, audit.Action.FILE, filing, ins, env.document_id)
    return filing


def queue_notification(conn: sa.Connection, ins: str, document_id: str, event: str) -> None:
    conn.execute(
        notifications.insert(),
        dict(patient_ins=ins, document_id=document_id, event=event, created_at=datetime.now(UTC)),
    )


def _upsert_patient(conn: sa.Connection, env: Envelope, now: datetime) -> None:
    ins = env.patient.ins
    if not ins:
        return
    row = conn.execute(_BIRTH_DATE_OF, {"ins": ins}).first()
    birth = (env.patient.birth_date or "")[:8] or None
    if row is None:
        conn.execute(
            patients.insert(),
            dict(ins=ins, ins_system=env.patient.ins_system, birth_date=birth, created_at=now),
        )
    elif birth and row.birth_date != birth:
        conn.execute(patients.update().where(patients.c.ins == ins).values(birth_date=birth))


def _withdraw(conn: sa.Connection, env: Envelope, sender: audit.Actor) -> Filing:
    target_id = env.replaces
    if target_id is None:
        exists = conn.execute(
            sa.select(documents.c.document_id).where(documents.c.document_id == env.document_id)
        ).scalar_one_or_none()
        target_id = exists
    if target_id is None and env.set_id:
        target_id = conn.execute(
            sa.select(document_sets.c.current_document_id).where(
                document_sets.c.set_id == env.set_id
            )
        ).scalar_one_or_none()
    target = (
        conn.execute(
            sa.select(documents.c.document_id, documents.c.patient_ins, documents.c.status)
            .where(documents.c.document_id == target_id)
            .with_for_update()
        ).first()
        if target_id
        else None
    )
    if target is None:
        return _refuse(conn, env, sender, Filing.ORPHAN, "no filed document to withdraw")
    if target.status == "withdrawn":
        return Filing.DUPLICATE
    author_orgs = set(
        conn.execute(
            sa.select(document_authors.c.organisation_id).where(
                document_authors.c.document_id == target.document_id
            )
        ).scalars()
    ) - {None}
    if target.patient_ins != env.patient.ins or not (organisations(env) & author_orgs):
        audit.record(
            conn,
            sender,
            audit.Action.WITHDRAW,
            Filing.REFUSED,
            target.patient_ins,
            target.document_id,
            "only the author's organisation withdraws a document",
        )
        return Filing.REFUSED
    conn.execute(
        documents.update()
        .where(documents.c.document_id == target.document_id)
        .values(status="withdrawn", withdrawn_at=datetime.now(UTC))
    )
    audit.record(
        conn,
        sender,
        audit.Action.WITHDRAW,
        Filing.WITHDRAWN,
        target.patient_ins,
        target.document_id,
    )
    return Filing.WITHDRAWN


def _refuse(
    conn: sa.Connection, env: Envelope, sender: audit.Actor, filing: Filing, reason: str
) -> Filing:
    action = audit.Action.WITHDRAW if env.action == "delete" else audit.Action.FILE
    audit.record(conn, sender, action, filing, env.patient.ins, env.document_id, reason)
    return filing
