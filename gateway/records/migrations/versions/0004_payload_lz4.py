"""documents: payload and envelope compressed with lz4 on PostgreSQL (pglz before)

PostgreSQL compresses large values with pglz by default. On a 130 KB CR-BIO with an embedded
PDF, pglz spends ~3.9 ms of server CPU per insert and then stores the value uncompressed (its
first kilobytes do not compress well enough, so it gives up); lz4 spends ~1 ms and stores
112 KB (docs/performance.md). Existing rows keep their compression until rewritten; new rows
use lz4. Servers built without lz4 (or older than 14) keep pglz. SQLite: nothing to do.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("payload", "envelope")


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    choices = bind.exec_driver_sql(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
    ).scalar()
    return bool(choices) and "lz4" in choices


def upgrade() -> None:
    if _lz4_available():
        for column in COLUMNS:
            op.execute(f"ALTER TABLE documents ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in COLUMNS:
            op.execute(f"ALTER TABLE documents ALTER COLUMN {column} SET COMPRESSION default")
