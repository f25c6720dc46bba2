"""`tailor worker` and `tailor jobs list|show|retrain|evaluate|predict|cancel|recover`: the job queue from a shell.

Commands queue and inspect jobs in the same database the server uses; `tailor worker` runs them, in this
process, until stopped (SIGTERM or Ctrl-C gives a running job back to the queue).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from service.api.schemas.jobs import JobInfo
from service.cli.console import console, fail, open_store, settings_from
from service.jobs.context import WorkerStopping
from service.jobs.kinds import validate_params
from service.jobs.worker import Worker, stop_on_signals
from service.store import queue
from service.store.db import store_from_settings

jobs_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Background jobs: retrain, evaluate, predict.")


def worker(
    worker_id: Annotated[Optional[str], typer.Option("--id", help="worker id (default: host:pid:random)")] = None,
    once: Annotated[bool, typer.Option(help="run queued jobs, then exit when the queue is empty")] = False,
    parent: Annotated[Optional[int], typer.Option(help="stop when this process (the server) is gone")] = None,
    log_level: Annotated[str, typer.Option(help="logging level")] = "info",
) -> None:
    """Claim and run jobs from the queue until stopped (`tailor serve` starts one of these itself)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-start migration chatter is not news
    settings = settings_from()
    if settings.worker_nice:
        os.nice(settings.worker_nice)  # training must not starve the server's requests of CPU

    stop = threading.Event()
    restore_signals = stop_on_signals(stop)
    if parent is not None:
        _watch_parent(parent)
    try:
        try:
            store = store_from_settings(settings)
        except Exception as exc:
            fail(f"cannot open the database: {exc}")
        try:
            Worker(store, settings, worker_id).run_forever(stop, idle_exit=once)
        finally:
            store.close()
    except WorkerStopping as exc:
        logging.getLogger("tailor.worker").info("stopping on %s", exc)
    finally:
        restore_signals()  # when run in-process (tests), leave signals as they were


def _watch_parent(parent: int, every_s: float = 1.0) -> None:
    """A server killed outright cannot stop its worker: the worker notices it was orphaned and stops itself
    (the normal way, through SIGTERM, so a running job goes back to the queue)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _queue(kind: str, params: dict, reason: str | None) -> None:

    settings, store = open_store()
    try:
        with store.session() as s:
            params = validate_params(kind, params, settings, s)
            if kind == "retrain":
                job, created = queue.enqueue_retrain(s, params, reason=reason, requested_by="cli",
                                                     max_attempts=settings.job_max_attempts)
            else:
                job, created = queue.enqueue(s, kind, params, reason=reason, requested_by="cli",
                                             max_attempts=settings.job_max_attempts), True
    except queue.JobError as exc:
        fail(str(exc))
    finally:
        store.close()
    console.print(f"job {job.id} ({kind}) " + ("queued" if created else f"already {job.status}; not queued again"))


@jobs_app.command("retrain")
def jobs_retrain(epochs: Annotated[Optional[int], typer.Option(help="override retrain_config epochs")] = None,
                 no_promote: Annotated[bool, typer.Option(help="register the candidate, skip the gate")] = False,
                 no_base_data: Annotated[bool, typer.Option(help="train on corrections only")] = False,
                 reason: Annotated[Optional[str], typer.Option(help="why (kept with the job)")] = None) -> None:
    """Queue a retrain on all approved corrections (joins one already queued)."""
    params = {"epochs": epochs} if epochs else {}
    if no_promote:
        params["promote"] = False
    if no_base_data:
        params["use_base_data"] = False
    _queue("retrain", params, reason)


@jobs_app.command("evaluate")
def jobs_evaluate(version: Annotated[Optional[str], typer.Option(help="model version (default: current)")] = None,
                  folder: Annotated[Optional[str], typer.Option(help="dataset under batch_root (default: "
                                                                     "the evaluation set)")] = None) -> None:
    """Queue an evaluation of a model version."""
    _queue("evaluate", {k: v for k, v in {"version": version, "folder": folder}.items() if v}, None)


@jobs_app.command("predict")
def jobs_predict(folder: Annotated[str, typer.Argument(help="folder under batch_root")],
                 version: Annotated[Optional[str], typer.Option(help="model version (default: current)")] = None,
                 left_right: Annotated[bool, typer.Option("--left-right", help="split paired classes into the "
                                                          "person's left and right (as `tailor predict`)")] = False,
                 ) -> None:
    """Queue drafts for a folder of photos (written under DATA_DIR/work/predictions-<job>/)."""
    _queue("batch_predict", {"folder": folder, **({"version": version} if version else {}),
                             **({"left_right": True} if left_right else {})}, None)


@jobs_app.command("list")
def jobs_list(status: Annotated[Optional[str], typer.Option(help="queued, running, succeeded, failed or cancelled")]
              = None,
              kind: Annotated[Optional[str], typer.Option(help="retrain, evaluate or batch_predict")] = None,
              limit: int = 20) -> None:
    """The newest jobs first."""
    _, store = open_store()
    try:
        with store.session() as s:
            rows, total = queue.list_jobs(s, status=status, kind=kind, limit=limit)
    except queue.JobError as exc:
        fail(str(exc))
    finally:
        store.close()
    table = Table("id", "kind", "status", "attempts", "stage", "created", "error", title=f"{total} job(s)")
    for j in rows:
        stage = j.progress.get("stage", "")
        if j.progress.get("epoch") is not None and stage == "training":
            stage += f" {j.progress['epoch']}/{j.progress.get('epochs')}"
        table.add_row(str(j.id), j.kind, j.status, f"{j.attempts}/{j.max_attempts}", stage,
                      j.created_at.strftime("%Y-%m-%d %H:%M"), (j.error or "")[:60])
    Console().print(table)


@jobs_app.command("show")
def jobs_show(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """One job as JSON: params, progress, result, error."""
    _, store = open_store()
    try:
        with store.session() as s:
            typer.echo(JobInfo.of(queue.get_job(s, job_id)).model_dump_json(indent=2))
    except queue.JobNotFound as exc:
        fail(str(exc))
    finally:
        store.close()


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="job id")]) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    _, store = open_store()
    try:
        with store.session() as s:
            job = queue.cancel(s, job_id)
    except (queue.JobNotFound, queue.JobError) as exc:
        fail(str(exc))
    finally:
        store.close()
    console.print(f"job {job.id}: {job.status}" + (" (stop requested)" if job.status == "running" else ""))


@jobs_app.command("recover")
def jobs_recover(stale_after: Annotated[Optional[float], typer.Option(help="seconds without a heartbeat "
                                                                          "(default: worker_stale_s)")] = None) -> None:
    """Requeue (or fail) running jobs whose worker stopped heartbeating; workers also do this themselves."""
    settings, store = open_store()
    try:
        with store.session() as s:
            changed = queue.recover(s, stale_after_s=settings.worker_stale_s if stale_after is None else stale_after)
    finally:
        store.close()
    console.print("; ".join(f"job {i}: {st}" for i, st in changed) or "no lost jobs")
