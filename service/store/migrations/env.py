"""Alembic environment: runs migrations on the URL (or engine) handed over by service.store.db.

There is no alembic.ini: upgrade_to_head builds the config in code, so the CLI, the app and tests
all migrate the same way. Batch mode lets later revisions alter SQLite tables.
"""
from __future__ import annotations

from alembic import context

from service.store.db import make_engine
from service.store.tables import Base

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(url=config.attributes["url"], target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = config.attributes.get("engine") or make_engine(config.attributes["url"])
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
