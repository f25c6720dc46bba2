"""Test helpers for the store: a snapshot of every table's row count and every stored file.

A refusal must leave both exactly as they were; comparing snapshots before and after checks that.
"""
from __future__ import annotations


def snapshot(store) -> tuple[dict, list[str]]:
    """Row counts of every table and every file under the data folder except the database's own."""
    from sqlalchemy import text

    from service.store.tables import Base

    with store.engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in Base.metadata.tables}
    files = sorted(str(p.relative_to(store.files.root)) for p in store.files.root.rglob("*")
                   if p.is_file() and not p.name.startswith("tailor.db"))
    return counts, files
