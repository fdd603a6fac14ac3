"""Alembic environment: runs migrations on the connection the Store hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import listserv.models  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through listserv.store.Store.upgrade (commonroom db upgrade)")
context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
