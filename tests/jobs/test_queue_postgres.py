"""The same queue on PostgreSQL: the migrations build the ORM's schema there too, claims stay atomic under
racing workers, and lost jobs are recovered; on a throwaway server started for this module.

Skipped where PostgreSQL's binaries or the psycopg driver are missing.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

from service.store import queue
from service.store.tables import utcnow
from tests.jobs.test_queue import _race


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))), None)
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found")
    as_user: list[str] = []
    # Not under pytest's own temp folder: that one is private to this user, and the server runs as another.
    root = Path(tempfile.mkdtemp(prefix="tailor-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use its own account
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a postgres account")
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                    f"-k {root} -p {port} -c listen_addresses='' -c fsync=off", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg(pg_url, tmp_path):
    """A migrated store on a clean PostgreSQL database, and settings pointing at it."""
    from sqlalchemy import text

    from service.store.db import make_engine, store_from_settings
    from tests.jobs.conftest import job_settings

    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    settings = job_settings(tmp_path, database_url=pg_url)
    store = store_from_settings(settings)
    yield settings, store
    store.close()


def test_migrations_match_the_orm_on_postgres(pg):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from service.store.tables import Base

    _, store = pg
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_claims_are_atomic_on_postgres(pg):
    settings, store = pg
    for _ in range(5):
        with store.session() as s:
            job = queue.enqueue(s, "evaluate", {})
        assert sorted(sum(_race(settings, 2, rounds_until_empty=False), [])) == [job.id]
    with store.session() as s:
        ids = [queue.enqueue(s, "evaluate", {}).id for _ in range(15)]
    assert sorted(sum(_race(settings, 3, rounds_until_empty=True), [])) == ids


def test_recovery_and_coalescing_on_postgres(pg):
    _, store = pg
    with store.session() as s:
        job = queue.enqueue(s, "evaluate", {}, max_attempts=1)
        queue.claim(s, "dead")
        assert queue.recover(s, stale_after_s=60) == []
        assert queue.recover(s, stale_after_s=60, now=utcnow() + timedelta(seconds=61)) == [(job.id, "failed")]
        assert queue.get_job(s, job.id).error.startswith(queue.WORKER_LOST)
        first, created = queue.enqueue_retrain(s, reason="a")
        assert created and queue.enqueue_retrain(s, reason="b") == (first, False)
