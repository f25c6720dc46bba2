"""The `tailor` command: the root Typer app, with each sub-app and command from its own module.

model (train, export, quantize, evaluate), serve, predict, refine, jobs (and worker), db, models, corrections,
worklist (with worklist_review's commands). main() is the console-script entry point.
"""
from __future__ import annotations

import sys

import typer

from service.cli.corrections import corrections_app
from service.cli.db import db_app
from service.cli.jobs import jobs_app, worker
from service.cli.model import evaluate, export, pseudo_label, quantize, train
from service.cli.models import models_app
from service.cli.predict import predict
from service.cli.refine import refine
from service.cli.serve import serve
from service.cli.worklist import worklist_app
from service.cli.worklist_review import register as register_review
from training.allocator import restart_with_huge_pages

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Tailor: draft garment masks for annotators.")


@app.callback()
def _root() -> None:
    """Tailor: draft garment masks for annotators."""


for command in (train, export, quantize, evaluate, pseudo_label, serve, predict, refine, worker):
    app.command()(command)
register_review(worklist_app)
for sub_app, name in ((db_app, "db"), (models_app, "models"), (corrections_app, "corrections"),
                      (worklist_app, "worklist"), (jobs_app, "jobs")):
    app.add_typer(sub_app, name=name)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("train", "worker"):  # the commands that train on this CPU
        restart_with_huge_pages()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
