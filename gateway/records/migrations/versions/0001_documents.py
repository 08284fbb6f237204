"""documents: one row per filed document

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("document_id", sa.String(256), primary_key=True),
        sa.Column("set_id", sa.String(256)),
        sa.Column("version", sa.Integer),
        sa.Column("patient_ins", sa.String(32)),
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
    op.create_index("ix_documents_set_id", "documents", ["set_id"])
    op.create_index("ix_documents_patient_ins", "documents", ["patient_ins"])


def downgrade() -> None:
    op.drop_table("documents")
