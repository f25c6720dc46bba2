"""What a running job sees: its params, progress reporting, and the ways it can be told to stop.

A handler calls ctx.progress(...) (or ctx.check()) between units of work; that is where a cancel request,
the loss of the job to another worker, or the worker's own shutdown reach it, as these exceptions.
"""
from __future__ import annotations

import logging
import threading

from service.store import Store, queue

log = logging.getLogger("tailor.worker")


class JobCancelled(Exception):
    """The job was asked to stop (POST /v1/jobs/{id}/cancel, /v1/batches/{id}/cancel)."""


class JobLost(Exception):
    """The job is no longer this worker's (it was recovered as lost after a long stall)."""


class WorkerStopping(BaseException):
    """The worker is shutting down (SIGTERM/SIGINT, or the server stopping): give the job back and exit."""


class JobContext:
    """A handler's view of its job: id, kind, params, progress (`state`), the store and the settings."""

    def __init__(self, job, store: Store, settings, worker_id: str, stopping: threading.Event | None = None):
        self.job_id, self.kind, self.params = job.id, job.kind, dict(job.params or {})
        self.attempt = job.attempts
        self.store, self.settings, self.worker_id = store, settings, worker_id
        self.state = dict(job.progress or {})  # an earlier attempt's progress, for a resume
        self.flag: str | None = None  # "cancel" or "lost", set by the heartbeat thread
        self.stopping = stopping or threading.Event()
        self._lock = threading.Lock()

    def check(self) -> None:
        if self.stopping.is_set():
            raise WorkerStopping(f"worker {self.worker_id} is stopping")
        if self.flag == "cancel":
            raise JobCancelled(f"job {self.job_id} cancelled")
        if self.flag == "lost":
            raise JobLost(f"job {self.job_id} is no longer held by {self.worker_id}")

    def progress(self, **fields) -> None:
        """Merge `fields` into the job's progress, write it now, and stop here if cancelled, lost or stopping."""
        with self._lock:
            self.state.update(fields)
            snapshot = dict(self.state)
        with self.store.session() as s:
            state = queue.heartbeat(s, self.job_id, self.worker_id, snapshot)
        if state != "ok":
            self.flag = state
        self.check()

    def log(self, *parts) -> None:
        log.info("job %s: %s", self.job_id, " ".join(str(p) for p in parts))
