"""The worker: claims jobs from the database queue and runs them in its own process (`tailor worker`).

While a job runs, a thread refreshes its heartbeat and learns of cancel requests; a worker that dies stops
heartbeating, and any worker's recovery pass requeues (or fails, "worker lost") the job it held.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable

from service.jobs.batch_predict import run_batch_predict
from service.jobs.context import JobCancelled, JobContext, JobLost, WorkerStopping
from service.jobs.kinds import run_evaluate
from service.jobs.retrain import run_retrain
from service.store import Store, queue

log = logging.getLogger("tailor.worker")


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set `stop` and raise WorkerStopping in the main thread; returns a function that
    puts the previous handlers back.

    The exception can land anywhere, even inside a C extension that turns it into its own error (an
    `import onnxruntime` under way fails with "ImportError: initialization failed"); the event is what
    the worker trusts: a job that fails while it is set was stopped, not broken (Worker._run).
    """
    def handler(signum, _frame):
        stop.set()
        raise WorkerStopping(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# Every kind, as `tailor worker` runs them; the server's own worker thread takes batch_predict only.
HANDLERS: dict[str, Callable[[JobContext], dict]] = {"retrain": run_retrain, "evaluate": run_evaluate,
                                                     "batch_predict": run_batch_predict}


class Worker:
    def __init__(self, store: Store, settings, worker_id: str | None = None,
                 handlers: dict[str, Callable] | None = None):
        self.store, self.settings = store, settings
        self.id = worker_id or new_worker_id()
        self.handlers = handlers if handlers is not None else HANDLERS
        self.stop = threading.Event()  # set by stop_on_signals (through run_forever's `stop`), or shutdown()
        self._wake = threading.Event()

    def wake(self) -> None:
        """Look for queued jobs now rather than at the next poll (a job was just queued in this process)."""
        self._wake.set()

    def shutdown(self) -> None:
        """Stop after the current unit of work of a running job, which goes back to the queue (a thread's
        worker; a process's worker stops on its signals)."""
        self.stop.set()
        self._wake.set()

    def recover(self) -> list[tuple[int, str]]:
        with self.store.session() as s:
            changed = queue.recover(s, stale_after_s=self.settings.worker_stale_s)
        for job_id, status in changed:
            log.warning("job %s lost its worker (no heartbeat for %.0f s): %s", job_id,
                        self.settings.worker_stale_s, status)
        return changed

    def run_once(self) -> int | None:
        """Recover lost jobs, then claim and run one job; returns its id, or None when the queue is empty."""
        self.recover()
        with self.store.session() as s:
            job = queue.claim(s, self.id, tuple(self.handlers))
        if job is None:
            return None
        self._run(job)
        return job.id

    def run_forever(self, stop: threading.Event | None = None, idle_exit: bool = False) -> None:
        stop = self.stop = stop or self.stop
        log.info("worker %s polling every %.1f s", self.id, self.settings.worker_poll_s)
        while not stop.is_set():
            if self.run_once() is None:
                if idle_exit:
                    return
                self._wake.wait(self.settings.worker_poll_s)
                self._wake.clear()

    def run_in_thread(self, name: str = "tailor-worker") -> threading.Thread:
        """run_forever on a daemon thread, until shutdown() (the server's own batch drafting)."""
        def loop() -> None:
            try:
                self.run_forever()
            except WorkerStopping:  # a running job was given back to the queue
                pass

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        return thread

    def _beat(self, ctx: JobContext, done: threading.Event) -> None:
        while not done.wait(self.settings.worker_heartbeat_s):
            try:
                with self.store.session() as s:
                    state = queue.heartbeat(s, ctx.job_id, self.id)
            except Exception:  # a locked or unreachable database: try again at the next beat
                log.exception("heartbeat of job %s failed", ctx.job_id)
                continue
            if state != "ok":
                ctx.flag = state
                if state == "lost":
                    return

    def _give_back(self, job) -> None:
        with self.store.session() as s:
            queue.release(s, job.id, self.id, f"worker {self.id} stopped; requeued")
        log.info("job %s given back to the queue", job.id)

    def _run(self, job) -> None:
        ctx = JobContext(job, self.store, self.settings, self.id, self.stop)
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(ctx, done), name=f"heartbeat-{job.id}", daemon=True)
        beat.start()
        log.info("job %s (%s) started, attempt %s of %s", job.id, job.kind, job.attempts, job.max_attempts)
        t0 = time.monotonic()
        outcome, kwargs = "failed", {}
        try:
            result = self.handlers[job.kind](ctx)
            outcome, kwargs = "succeeded", {"result": result}
        except JobCancelled:
            outcome, kwargs = "cancelled", {"error": "cancelled on request"}
        except JobLost as exc:
            log.warning("%s; its result is dropped", exc)
            return
        except WorkerStopping:
            self._give_back(job)
            raise
        except Exception as exc:
            if self.stop.is_set():  # the stop signal, disguised by whatever it interrupted
                log.info("job %s interrupted by the stop signal (%s: %s)", job.id, type(exc).__name__, exc)
                self._give_back(job)
                raise WorkerStopping("stop signal during the job") from exc
            log.exception("job %s failed", job.id)
            kwargs = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            done.set()
            beat.join(5)
        with self.store.session() as s:
            if not queue.finish(s, job.id, self.id, outcome, progress=dict(ctx.state) or None, **kwargs):
                log.warning("job %s was taken from worker %s before it finished", job.id, self.id)
        log.info("job %s %s in %.1f s", job.id, outcome, time.monotonic() - t0)
