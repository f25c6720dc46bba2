"""Database engine and sessions: SQLite (a file under data_dir, WAL mode, foreign keys on) or any URL.

`upgrade_to_head(url)` applies the Alembic migrations (run at app start and by `tailor db upgrade`);
`open_store(settings)` upgrades, then returns a Store with a session factory and the file area.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.store.files import FileStore

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite the folder is created and every connection gets WAL + FKs."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Requests run in the threadpool, so a connection may be used by another thread than its creator;
        # the pool still hands each connection to one thread at a time.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers (lists, exports) run while a correction is being written.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str, engine: Engine | None = None):
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as attributes, not main options: configparser would choke on '%' in a password.
    cfg.attributes["url"] = url
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade_to_head(url: str, engine: Engine | None = None) -> str:
    """Apply every pending migration; returns the revision the database is now at."""
    own = engine is None
    engine = engine or make_engine(url)
    try:
        command.upgrade(alembic_config(url, engine), "head")
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() or ""
    finally:
        if own:
            engine.dispose()


@dataclass
class Store:
    """One database plus the data folder; `session()` is a context manager, `sessions` the factory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    files: FileStore

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()


def open_store(data_dir: Path, url: str | None = None, upgrade: bool = True) -> Store:
    """Open (and by default migrate) the database at `url` (default: DATA_DIR/tailor.db)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{(data_dir / 'tailor.db').resolve()}"
    engine = make_engine(url)
    if upgrade:
        upgrade_to_head(url, engine)
    # expire_on_commit=False: rows returned by the store stay readable after their transaction.
    factory = sessionmaker(engine, expire_on_commit=False)
    return Store(url, engine, factory, FileStore(data_dir))


def store_from_settings(settings, upgrade: bool = True) -> Store:
    return open_store(settings.data_dir, settings.db_url, upgrade=upgrade)
