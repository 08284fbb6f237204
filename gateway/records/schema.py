"""Tables of the record store (SQLAlchemy Core). Migrations in records/migrations create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

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
)
