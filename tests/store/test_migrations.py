"""The Alembic migrations build exactly the schema the ORM declares, and upgrading twice is harmless.

compare_metadata reports any table, column, type, index or nullability the two disagree on, so a
model change without a migration (or the reverse) fails here.
"""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, create_engine, inspect

from service.store.db import upgrade_to_head
from service.store.tables import Base

HEAD = "0003"  # the newest revision in migrations/versions


def test_migration_matches_orm(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert upgrade_to_head(url) == HEAD
    engine = create_engine(url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert set(inspect(conn).get_table_names()) >= set(Base.metadata.tables)
    assert upgrade_to_head(url) == HEAD  # idempotent


def test_comparison_would_catch_a_drift(tmp_path):
    # Guard for the test above: an ORM column with no migration must show up as a difference.
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_to_head(url)
    copy = MetaData()
    for t in Base.metadata.tables.values():
        t.to_metadata(copy)
    copy.tables["images"].append_column(Column("not_migrated", Integer))
    with create_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), copy)
    assert any(d[0] == "add_column" and d[3].name == "not_migrated" for d in diff)


def test_sqlite_is_wal_with_foreign_keys(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
