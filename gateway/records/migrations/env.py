"""Alembic environment: run with the connection handed over by gateway.records.store."""

from alembic import context

from gateway.records.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
