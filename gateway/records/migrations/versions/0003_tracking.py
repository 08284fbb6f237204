"""tracking: one row per inbound message and its timeline of events (message browser)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracked_messages",
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(256), nullable=False),
        sa.Column("size", sa.Integer),
        sa.Column("kind", sa.String(16)),
        sa.Column("message_type", sa.String(32)),
        sa.Column("control_id", sa.String(64)),
        sa.Column("document_id", sa.String(256)),
        sa.Column("type_code", sa.String(64)),
        sa.Column("destinations", sa.String(512)),
        sa.Column("rules", sa.String(512)),
    )
    op.create_index("ix_tracked_messages_received_at", "tracked_messages", ["received_at"])
    op.create_index("ix_tracked_messages_status", "tracked_messages", ["status"])
    op.create_index("ix_tracked_messages_sender", "tracked_messages", ["sender"])
    op.create_table(
        "tracked_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_tracked_events_trace_id", "tracked_events", ["trace_id"])


def downgrade() -> None:
    op.drop_table("tracked_events")
    op.drop_table("tracked_messages")
