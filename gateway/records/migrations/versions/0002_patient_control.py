"""versions, patient control, audit trail and notification outbox

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="current")
        )
        batch.add_column(sa.Column("superseded_by", sa.String(256)))
        batch.add_column(sa.Column("creation_date", sa.String(10)))
        batch.add_column(sa.Column("facility_id", sa.String(64)))
        for flag in ("masked", "invisible_patient", "invisible_representatives"):
            batch.add_column(sa.Column(flag, sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("released_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True)))
        batch.add_column(
            sa.Column("signature_status", sa.String(16), nullable=False, server_default="unchecked")
        )
    op.create_table(
        "document_authors",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(256), nullable=False),
        sa.Column("author_id", sa.String(64)),
        sa.Column("organisation_id", sa.String(64)),
    )
    op.create_index("ix_document_authors_document_id", "document_authors", ["document_id"])
    op.create_index("ix_document_authors_author_id", "document_authors", ["author_id"])
    op.create_table(
        "document_sets",
        sa.Column("set_id", sa.String(256), primary_key=True),
        sa.Column("patient_ins", sa.String(32), nullable=False),
        sa.Column("current_document_id", sa.String(256), nullable=False),
        sa.Column("current_version", sa.Integer),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Documents filed before 0002 each become the current version of their set.
    op.execute(
        "INSERT INTO document_sets (set_id, patient_ins, current_document_id, current_version,"
        " updated_at) SELECT COALESCE(set_id, document_id), COALESCE(patient_ins, ''),"
        " MAX(document_id), MAX(version), MAX(filed_at) FROM documents"
        " GROUP BY COALESCE(set_id, document_id), COALESCE(patient_ins, '')"
    )
    op.create_table(
        "patients",
        sa.Column("ins", sa.String(32), primary_key=True),
        sa.Column("ins_system", sa.String(64)),
        sa.Column("birth_date", sa.String(8)),
        sa.Column("attending_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "legal_representatives",
        sa.Column("patient_ins", sa.String(32), primary_key=True),
        sa.Column("representative_id", sa.String(64), primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "access_decisions",
        sa.Column("patient_ins", sa.String(32), primary_key=True),
        sa.Column("professional_id", sa.String(64), primary_key=True),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("patient_ins", sa.String(32)),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(256), nullable=False),
        sa.Column("actor_role", sa.String(64)),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("document_id", sa.String(256)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(256)),
    )
    op.create_index("ix_audit_events_patient_ins", "audit_events", ["patient_ins"])
    op.create_table(
        "notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("patient_ins", sa.String(32), nullable=False),
        sa.Column("document_id", sa.String(256), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("document_id", "event", name="uq_notifications_document_event"),
    )
    op.create_index("ix_notifications_sent_at", "notifications", ["sent_at"])


def downgrade() -> None:
    for table in (
        "notifications",
        "audit_events",
        "access_decisions",
        "legal_representatives",
        "patients",
        "document_sets",
        "document_authors",
    ):
        op.drop_table(table)
    with op.batch_alter_table("documents") as batch:
        for col in (
            "signature_status",
            "withdrawn_at",
            "released_at",
            "invisible_representatives",
            "invisible_patient",
            "masked",
            "facility_id",
            "creation_date",
            "superseded_by",
            "status",
        ):
            batch.drop_column(col)
