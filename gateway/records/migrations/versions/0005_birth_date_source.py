"""patients: the creation time and document that gave the birth date

The birth date decides minority (who opens the record). Filing takes it only from a document
that becomes current and is newer than the one that gave it (records/filing.py); these
columns say which one that was. Existing rows keep their birth date with no source: the next
current document that gives one sets both.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("birth_date_time", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("birth_date_document_id", sa.String(256)))


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("birth_date_document_id")
        batch.drop_column("birth_date_time")
