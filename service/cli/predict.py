"""`tailor predict`: drafts of local photos, offline, into masks/, coco.json and summary.csv.

The same engine and limits as the service (Engine.draft), so a folder drafted here gets the masks the
server would give; an unreadable photo is reported and skipped, and the exit code says so (1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress

from models.card import ModelDirError
from service.cli.console import PROGRESS, console, fail, settings_from
from service.drafting.batch import predict_files
from service.drafting.engine import Engine
from service.drafting.photo_files import collect_inputs
from service.drafting.predictor import load_predictor


def predict(
    paths: Annotated[list[Path], typer.Argument(help="image files and/or folders (searched recursively)")],
    out: Annotated[Path, typer.Option(help="output folder: masks/, coco.json, summary.csv")],
    model: Annotated[Optional[Path], typer.Option(help="model directory (default: the bundled model)")] = None,
    backend: Annotated[Optional[str], typer.Option(help="auto, onnx or torch")] = None,
    threads: Annotated[Optional[int], typer.Option(help="inference threads")] = None,
    left_right: Annotated[bool, typer.Option("--left-right", help="split pants, legwear, socks and shoes into "
                                             "<name>_left/_right: the person's own sides, so their left is on "
                                             "the image's RIGHT")] = False,
) -> None:
    """Pre-annotate local photos offline. Unreadable files are reported and skipped (exit code 1)."""
    settings = settings_from(model_dir=model, backend=backend, threads=threads)
    inputs, missing = collect_inputs(paths)
    for name, reason in missing:
        console.print(f"[bold red]error:[/] {name}: {reason}", highlight=False)
    if not inputs:
        fail("no image files to predict")
    try:
        predictor = load_predictor(settings.model_dir, settings)
    except (ModelDirError, ValueError, ImportError) as exc:
        fail(str(exc))
    engine = Engine(predictor, settings)
    try:
        with Progress(*PROGRESS, console=console, transient=False) as progress:
            task = progress.add_task("predicting", total=len(inputs))

            def step(path: Path, error: str | None) -> None:
                if error:
                    progress.console.print(f"[bold red]skipped:[/] {error}", highlight=False)
                progress.advance(task)

            report = predict_files(engine, inputs, out, on_step=step, left_right=left_right)
    finally:
        engine.close()
    failed = len(report.failures) + len(missing)
    console.print(f"wrote {len(report.written)} mask(s), {out / 'coco.json'} and {out / 'summary.csv'}"
                  + (f"; [bold red]{failed} failed[/]" if failed else ""), highlight=False)
    if failed:
        raise typer.Exit(1)
