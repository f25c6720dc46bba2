"""The database queue on its own: claims are atomic across workers, heartbeats, cancellation, recovery of
jobs whose worker died (requeued while attempts remain, then failed "worker lost"), and the Worker loop.

Workers here are threads with their own database connections, racing on the same SQLite file.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from service.jobs.worker import Worker
from service.store import queue
from service.store.db import store_from_settings
from service.store.tables import utcnow


def _race(settings, workers: int, rounds_until_empty: bool) -> list[list[int]]:
    """Each thread opens its own store and claims (once, or until the queue is empty) after a barrier."""
    barrier = threading.Barrier(workers)
    got: list[list[int]] = [[] for _ in range(workers)]

    def run(i: int) -> None:
        store = store_from_settings(settings, upgrade=False)
        try:
            barrier.wait()
            while True:
                with store.session() as s:
                    job = queue.claim(s, f"w{i}")
                if job is None:
                    break
                got[i].append(job.id)
                if not rounds_until_empty:
                    break
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return got


def test_two_workers_one_job(store, settings):
    for _ in range(8):
        with store.session() as s:
            job = queue.enqueue(s, "evaluate", {})
        got = _race(settings, 2, rounds_until_empty=False)
        assert sorted(sum(got, [])) == [job.id], got  # exactly one worker has it
        with store.session() as s:
            row = queue.get_job(s, job.id)
            assert row.status == "running" and row.attempts == 1 and row.worker in ("w0", "w1")


def test_many_workers_drain_the_queue_once(store, settings):
    with store.session() as s:
        ids = [queue.enqueue(s, "evaluate", {}).id for _ in range(15)]
    got = _race(settings, 3, rounds_until_empty=True)
    assert sorted(sum(got, [])) == ids  # each job claimed once, none twice, none skipped


def test_heartbeat_cancel_and_finish(store):
    with store.session() as s:
        job = queue.enqueue(s, "retrain", {})
        assert queue.claim(s, "w1").id == job.id
        assert queue.heartbeat(s, job.id, "w1", {"epoch": 1}) == "ok"
        assert queue.heartbeat(s, job.id, "someone-else") == "lost"
        assert queue.cancel(s, job.id).cancel_requested  # running: asked to stop, still running
        assert queue.get_job(s, job.id).status == "running"
        assert queue.heartbeat(s, job.id, "w1") == "cancel"
        assert queue.finish(s, job.id, "w1", "cancelled")
        assert not queue.finish(s, job.id, "w1", "succeeded")  # already final: nothing changes
        assert queue.get_job(s, job.id).status == "cancelled"
        assert queue.get_job(s, job.id).progress == {"epoch": 1}
        with pytest.raises(queue.JobError, match="already cancelled"):
            queue.cancel(s, job.id)
        queued = queue.enqueue(s, "evaluate", {})
        assert queue.cancel(s, queued.id).status == "cancelled"
        assert queue.claim(s, "w1") is None


def test_stale_heartbeat_requeues_then_fails_worker_lost(store):
    with store.session() as s:
        job = queue.enqueue(s, "evaluate", {}, max_attempts=2)
        queue.claim(s, "dead-1")
        assert queue.recover(s, stale_after_s=60) == []  # a fresh heartbeat is not stale
        later = utcnow() + timedelta(seconds=61)
        assert queue.recover(s, stale_after_s=60, now=later) == [(job.id, "queued")]
        row = queue.get_job(s, job.id)
        assert row.status == "queued" and row.worker is None and row.error.startswith("worker lost")
        # The dead worker cannot write a result for a job that is no longer its own.
        assert not queue.finish(s, job.id, "dead-1", "succeeded", result={"x": 1})
        assert queue.claim(s, "dead-2").attempts == 2
        later = utcnow() + timedelta(seconds=61)
        assert queue.recover(s, stale_after_s=60, now=later) == [(job.id, "failed")]
        row = queue.get_job(s, job.id)
        assert row.status == "failed" and row.error.startswith(queue.WORKER_LOST) and row.finished_at


def test_recover_by_worker_id_leaves_other_workers_alone(store):
    with store.session() as s:
        a, b = queue.enqueue(s, "evaluate", {}), queue.enqueue(s, "evaluate", {}, max_attempts=1)
        queue.claim(s, "alive")
        queue.claim(s, "dead")
        assert queue.recover(s, worker="dead") == [(b.id, "failed")]
        assert queue.get_job(s, a.id).status == "running"
        with pytest.raises(queue.JobError):
            queue.recover(s)


def test_worker_runs_handlers_and_records_outcomes(store, settings):
    seen = []

    def ok(ctx):
        ctx.progress(stage="half", done=1)
        seen.append(ctx.params)
        return {"answer": 42}

    def boom(ctx):
        raise RuntimeError("disk full")

    def cancelled(ctx):
        with ctx.store.session() as s:
            queue.cancel(s, ctx.job_id)  # as if someone pressed cancel while it ran
        ctx.progress(stage="after cancel")  # the next report notices and stops the job
        raise AssertionError("not reached")

    worker = Worker(store, settings, "w", handlers={"evaluate": ok, "retrain": boom, "batch_predict": cancelled})
    with store.session() as s:
        j1 = queue.enqueue(s, "evaluate", {"version": "v"})
        j2 = queue.enqueue(s, "retrain", {})
        j3 = queue.enqueue(s, "batch_predict", {"folder": "x"})
    worker.run_forever(idle_exit=True)
    with store.session() as s:
        r1, r2, r3 = (queue.get_job(s, j.id) for j in (j1, j2, j3))
    assert r1.status == "succeeded" and r1.result == {"answer": 42} and r1.progress == {"stage": "half", "done": 1}
    assert seen == [{"version": "v"}]
    assert r2.status == "failed" and r2.error == "RuntimeError: disk full"
    assert r3.status == "cancelled" and r3.progress["stage"] == "after cancel"
    assert all(r.finished_at and r.worker == "w" for r in (r1, r2, r3))


def test_retrain_requests_coalesce(store):
    with store.session() as s:
        first, created = queue.enqueue_retrain(s, reason="a")
        again, created_again = queue.enqueue_retrain(s, reason="b")
        assert created and not created_again and again.id == first.id
        queue.claim(s, "w")
        # A queued retrain is joined; a running one is not (it may have started before new approvals).
        second, created = queue.enqueue_retrain(s, reason="c")
        assert created and second.id != first.id
        # The every-N trigger waits while any retrain is queued or running.
        assert queue.maybe_trigger_retrain(s, every=1) is None


@pytest.mark.parametrize("disguised", [False, True])
def test_a_stop_signal_gives_the_job_back_even_inside_an_extension(store, settings, disguised):
    """SIGTERM mid-job: the job goes back to the queue (attempt not counted) and the worker stops, also
    when the signal lands inside C code that reports it as its own error, as onnxruntime's import
    does ("ImportError: initialization failed", the WorkerStopping as its cause)."""
    import os
    import signal
    import threading
    import time

    from service.jobs.context import WorkerStopping
    from service.jobs.worker import stop_on_signals

    def interrupted(ctx):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except BaseException as exc:
            if disguised:
                raise ImportError("initialization failed") from exc
            raise
        raise AssertionError("not reached")

    with store.session() as s:
        job = queue.enqueue(s, "batch_predict", {"folder": "x"}, max_attempts=1)
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    restore = stop_on_signals(stop)
    try:
        with pytest.raises(WorkerStopping):
            Worker(store, settings, "w", handlers={"batch_predict": interrupted}).run_forever(stop, idle_exit=True)
    finally:
        restore()
    assert stop.is_set() and signal.getsignal(signal.SIGTERM) is before
    with store.session() as s:
        back = queue.get_job(s, job.id)
    assert back.status == "queued" and back.attempts == 0 and "stopped" in back.error
