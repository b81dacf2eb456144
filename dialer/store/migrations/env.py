"""Alembic environment: runs on the connection handed over by dialer.store.migrate."""

from __future__ import annotations

from alembic import context

from dialer.store import auth_models  # noqa: F401 - registers the auth tables
from dialer.store.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
