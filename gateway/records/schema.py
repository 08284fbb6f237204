"""Tables of the record store (SQLAlchemy Core). Migrations in records/migrations create them.

A document row is one version; ``document_sets`` points at the current version of each setId,
so filing a new version locks one row and a stale version can never become current. Patient
control (attending doctor, legal representatives, grants and oppositions) sits in small tables
keyed by INS; every read and change leaves a row in ``audit_events``; ``notifications`` is an
outbox, written in the filing transaction and sent afterwards.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("document_id", sa.String(256), primary_key=True),
    sa.Column("set_id", sa.String(256), index=True),
    sa.Column("version", sa.Integer),
    sa.Column("patient_ins", sa.String(32), index=True),
    sa.Column("patient_ins_system", sa.String(64)),
    sa.Column("type_code", sa.String(64)),
    sa.Column("source_kind", sa.String(16), nullable=False),
    sa.Column("sender", sa.String(256), nullable=False),
    sa.Column("content_type", sa.String(128), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("creation_time", sa.String(32)),
    sa.Column("received_at", sa.String(40), nullable=False),
    sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trace_id", sa.String(64), nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    # 0002: versions, patient control, signature status
    sa.Column("status", sa.String(16), nullable=False, server_default="current"),
    sa.Column("superseded_by", sa.String(256)),
    sa.Column("creation_date", sa.String(10)),  # YYYY-MM-DD of creation_time, for filters
    sa.Column("facility_id", sa.String(64)),
    sa.Column("masked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("invisible_patient", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("invisible_representatives", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("released_at", sa.DateTime(timezone=True)),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
    sa.Column("signature_status", sa.String(16), nullable=False, server_default="unchecked"),
)

document_authors = sa.Table(
    "document_authors",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.String(256), nullable=False, index=True),
    sa.Column("author_id", sa.String(64), index=True),
    sa.Column("organisation_id", sa.String(64)),
)

document_sets = sa.Table(
    "document_sets",
    metadata,
    sa.Column("set_id", sa.String(256), primary_key=True),
    sa.Column("patient_ins", sa.String(32), nullable=False),
    sa.Column("current_document_id", sa.String(256), nullable=False),
    sa.Column("current_version", sa.Integer),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

patients = sa.Table(
    "patients",
    metadata,
    sa.Column("ins", sa.String(32), primary_key=True),
    sa.Column("ins_system", sa.String(64)),
    sa.Column("birth_date", sa.String(8)),  # YYYYMMDD, decides who is a minor
    sa.Column("attending_id", sa.String(64)),  # médecin traitant (RPPS)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # 0005: what gave the birth date (creation time, document): only newer documents change it
    sa.Column("birth_date_time", sa.DateTime(timezone=True)),
    sa.Column("birth_date_document_id", sa.String(256)),
)

legal_representatives = sa.Table(
    "legal_representatives",
    metadata,
    sa.Column("patient_ins", sa.String(32), primary_key=True),
    sa.Column("representative_id", sa.String(64), primary_key=True),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)

access_decisions = sa.Table(
    "access_decisions",
    metadata,
    sa.Column("patient_ins", sa.String(32), primary_key=True),
    sa.Column("professional_id", sa.String(64), primary_key=True),
    sa.Column("decision", sa.String(8), nullable=False),  # "grant" or "oppose"
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("patient_ins", sa.String(32), index=True),
    sa.Column("actor_kind", sa.String(16), nullable=False),
    sa.Column("actor_id", sa.String(256), nullable=False),
    sa.Column("actor_role", sa.String(64)),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("document_id", sa.String(256)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(256)),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("patient_ins", sa.String(32), nullable=False),
    sa.Column("document_id", sa.String(256), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), index=True),
    sa.UniqueConstraint("document_id", "event", name="uq_notifications_document_event"),
)
