"""A real `tailor worker` subprocess (started by the supervisor `tailor serve` uses) is killed with SIGKILL
mid-job: the job is requeued and then succeeds, or fails "worker lost" once attempts are used up, never left
"running". SIGTERM gives a running job back to the queue; a worker whose server died stops by itself.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from service.jobs.supervisor import WorkerSupervisor, settings_env
from service.store import queue
from tests.jobs.conftest import DEFAULT_MODEL, REPO, job_settings, seed_model

CCP = REPO.parent / "shared" / "data" / "ccp"


PHOTOS = 40  # a job of a few seconds: surely seen running and heartbeating before it is stopped


def wait_for(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def photo_root(tmp_path):
    """A batch_root with one folder of full-size photos: long enough a job to be killed in the middle of."""
    root = tmp_path / "batch_root"
    (root / "shoot").mkdir(parents=True)
    for p in sorted((CCP / "images").glob("*.jpg"))[:PHOTOS]:
        (root / "shoot" / p.name).write_bytes(p.read_bytes())
    return root


def _job(store, job_id):
    with store.session() as s:
        return queue.get_job(s, job_id)


def _running_on(store, job_id, worker_id):
    job = _job(store, job_id)
    return job.status == "running" and job.worker == worker_id and job


def test_killed_worker_job_is_requeued_or_failed(tmp_path, photo_root):
    from service.store.db import store_from_settings

    settings = job_settings(tmp_path, batch_root=photo_root)
    store = store_from_settings(settings)
    seed_model(store, settings, DEFAULT_MODEL)
    with store.session() as s:
        once = queue.enqueue(s, "batch_predict", {"folder": "shoot"}, max_attempts=1).id
        twice = queue.enqueue(s, "batch_predict", {"folder": "shoot"}, max_attempts=2).id
    sup = WorkerSupervisor(settings)
    sup.start()
    try:
        # Kill the first worker while it runs the job that has a single attempt: failed, "worker lost".
        assert wait_for(lambda: sup.worker_id and _running_on(store, once, sup.worker_id)), _job(store, once).status
        os.kill(sup.proc.pid, signal.SIGKILL)
        assert wait_for(lambda: _job(store, once).status == "failed", 60)
        assert _job(store, once).error.startswith("worker lost")
        # The restarted worker takes the next job; kill it too: that job goes back to the queue...
        first = sup.worker_id
        assert wait_for(lambda: sup.worker_id != first and _running_on(store, twice, sup.worker_id), 120)
        os.kill(sup.proc.pid, signal.SIGKILL)
        # ...and the third worker finishes it on its second attempt.
        done = wait_for(lambda: _job(store, twice).status in queue.FINAL and _job(store, twice), 180)
        assert done and done.status == "succeeded", (done.status, done.error)
        assert done.attempts == 2 and done.result["written"] == PHOTOS and sup.restarts == 2
        assert (settings.work_dir / f"predictions-{twice}" / "coco.json").is_file()
        with store.session() as s:
            assert queue.list_jobs(s, status="running")[1] == 0  # nothing is left "running"
    finally:
        sup.stop()
        store.close()
    assert sup.proc.poll() is not None


def test_sigterm_gives_the_job_back(tmp_path, photo_root):
    from service.store.db import store_from_settings

    settings = job_settings(tmp_path, batch_root=photo_root)
    store = store_from_settings(settings)
    seed_model(store, settings, DEFAULT_MODEL)
    with store.session() as s:
        job_id = queue.enqueue(s, "batch_predict", {"folder": "shoot"}, max_attempts=1).id
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--id", "term-test"],
                            env=settings_env(settings), cwd=REPO)
    try:
        started = wait_for(lambda: _running_on(store, job_id, "term-test"))
        assert started, _job(store, job_id).status
        # The worker's heartbeat moves on while the job runs.
        assert wait_for(lambda: _job(store, job_id).heartbeat_at > started.heartbeat_at, 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    job = _job(store, job_id)
    # Not a crash: the attempt is not counted, so even a single-attempt job runs again later.
    assert job.status == "queued" and job.attempts == 0 and "stopped" in job.error
    store.close()


def test_worker_stops_when_its_server_is_killed(tmp_path):
    """`tailor serve` killed outright (SIGKILL) cannot stop its worker; the worker sees it is orphaned."""
    settings = job_settings(tmp_path)
    pidfile = tmp_path / "worker.pid"
    # A shell stands in for the server: it starts the worker as its child, naming itself as the parent.
    script = f'{sys.executable} -m service.cli worker --parent $$ & echo $! > {pidfile}; wait'
    shell = subprocess.Popen(["sh", "-c", script], env=settings_env(settings), cwd=REPO)
    assert wait_for(lambda: pidfile.is_file() and pidfile.read_text().strip(), 30)
    worker_pid = int(pidfile.read_text())
    time.sleep(3)  # the worker is up and idle
    assert _alive(worker_pid)
    shell.kill()
    shell.wait()
    assert wait_for(lambda: not _alive(worker_pid), 30), "the orphaned worker kept running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited child of a dead shell is reaped by init; a zombie still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
