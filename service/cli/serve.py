"""`tailor serve`: the HTTP service, with one `tailor worker` child for the job queue (TAILOR_START_WORKER).

One server process: the model lives in it once and concurrency comes from the engine, not forks. Jobs
(retraining above all) run in the separate worker child, never in the server process.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
import uvicorn

from service.api.app import create_app
from service.api.logs import LEVELS, configure_logging
from service.cli.console import fail, settings_from
from service.jobs.supervisor import WorkerSupervisor


def serve(
    host: Annotated[Optional[str], typer.Option(help="bind address (default: TAILOR_HOST or 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default: TAILOR_PORT or 8000)")] = None,
    model: Annotated[Optional[Path], typer.Option(help="model directory (default: the bundled model)")] = None,
    backend: Annotated[Optional[str], typer.Option(help="auto, onnx or torch")] = None,
    threads: Annotated[Optional[int], typer.Option(help="inference threads")] = None,
    settings_file: Annotated[Optional[Path], typer.Option(help="YAML/JSON settings (env vars win)")] = None,
    log_level: Annotated[str, typer.Option(help="log level of uvicorn and the service")] = "info",
) -> None:
    """Run the HTTP service (docs at /docs, metrics at /metrics) and a job worker (TAILOR_START_WORKER)."""
    if settings_file is not None:
        os.environ["TAILOR_SETTINGS_FILE"] = str(settings_file)
    settings = settings_from(host=host, port=port, model_dir=model, backend=backend, threads=threads)
    if log_level.lower() not in LEVELS:
        fail(f"--log-level {log_level!r}: use one of {', '.join(LEVELS)}")
    configure_logging(log_level)
    supervisor = None
    if settings.start_worker:
        supervisor = WorkerSupervisor(settings)
        supervisor.start()
        # uvicorn re-raises the SIGTERM it shut down on; as an exception it lets `finally` stop the worker.
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        # The service writes its own access lines (tailor.access, with the request id and milliseconds).
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level.lower(),
                    access_log=False)
    finally:
        if supervisor is not None:
            supervisor.stop()
