"""Tables of message tracking (SQLAlchemy Core), in the record store's database.

``tracked_messages`` holds one row per inbound message (what the message browser lists and
searches); ``tracked_events`` its timeline. Metadata only: no payload, no patient identity.
Migration: records/migrations/versions/0003_tracking.py.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.records.schema import metadata

tracked_messages = sa.Table(
    "tracked_messages",
    metadata,
    sa.Column("trace_id", sa.String(64), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("transport", sa.String(16), nullable=False),
    sa.Column("sender", sa.String(256), nullable=False, index=True),
    sa.Column("size", sa.Integer),
    sa.Column("kind", sa.String(16)),
    sa.Column("message_type", sa.String(32)),
    sa.Column("control_id", sa.String(64)),
    sa.Column("document_id", sa.String(256)),
    sa.Column("type_code", sa.String(64)),
    sa.Column("destinations", sa.String(512)),
    sa.Column("rules", sa.String(512)),
)

tracked_events = sa.Table(
    "tracked_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trace_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
