"""`tailor serve` keeps one `tailor worker` subprocess alive beside the server (unless start_worker is false).

Training never runs in the server process: the worker is a child process with the server's own settings;
when it dies, the job it held is requeued at once (not after the heartbeat timeout) and it is restarted.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from service.jobs.worker import new_worker_id
from service.store import queue
from service.store.db import store_from_settings

log = logging.getLogger("tailor.supervisor")


def settings_env(settings, base: dict | None = None) -> dict[str, str]:
    """An environment that gives a child process exactly these settings (however they were made)."""
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if not k.startswith("TAILOR_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"TAILOR_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


class WorkerSupervisor:
    """Start the worker, restart it when it exits unexpectedly (with back-off), stop it on shutdown."""

    def __init__(self, settings, command: list[str] | None = None):
        self.settings = settings
        self.command = command or [sys.executable, "-m", "service.cli", "worker"]
        self.proc: subprocess.Popen | None = None
        self.worker_id: str | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        self.worker_id = new_worker_id() + "-w"
        self.proc = subprocess.Popen([*self.command, "--id", self.worker_id, "--parent", str(os.getpid())],
                                     env=settings_env(self.settings))
        log.info("started worker %s (pid %s)", self.worker_id, self.proc.pid)

    def _recover(self, worker_id: str) -> None:
        store = store_from_settings(self.settings, upgrade=False)
        try:
            with store.session() as s:
                for job_id, status in queue.recover(s, worker=worker_id):
                    log.warning("job %s: its worker %s exited; %s", job_id, worker_id, status)
        finally:
            store.close()

    def _loop(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            self._spawn()
            code = self.proc.wait()
            if self._stop.is_set():
                return
            log.error("worker %s exited with code %s; restarting in %.0f s", self.worker_id, code, delay)
            try:
                self._recover(self.worker_id)
            except Exception:  # the stale-heartbeat pass of the next worker covers this job then
                log.exception("could not requeue the jobs of worker %s", self.worker_id)
            # Back off when it dies at once (bad settings, broken install), reset after a healthy run.
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 60.0)
            self.restarts += 1
            self._stop.wait(delay)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the worker (it gives a running job back to the queue), then kill it if it lingers."""
        self._stop.set()
        self._terminate(self.proc, timeout)
        if self._thread is not None:
            self._thread.join(5)
        self._terminate(self.proc, timeout)  # one spawned in the moment before the stop flag was seen

    @staticmethod
    def _terminate(proc: subprocess.Popen | None, timeout: float) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
