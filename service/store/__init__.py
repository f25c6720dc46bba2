"""The store: a SQL database (SQLite by default, PostgreSQL by URL) plus content-addressed files.

Corrections, the images they belong to and the model versions live here; `Store` bundles the engine,
the session factory and the file area so the app, the CLI and workers open them the same way.
"""
from __future__ import annotations

from service.store.db import Store, open_store, upgrade_to_head
from service.store.files import FileStore

__all__ = ["FileStore", "Store", "open_store", "upgrade_to_head"]
