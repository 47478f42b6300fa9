"""Alembic environment of the case registry: runs on the connection `leadbus.sinks.registry` hands it."""

from __future__ import annotations

from alembic import context

from leadbus.sinks.registry import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
