"""The `tailor` command line: train, export, evaluate, predict and serve, one subcommand each.

Heavy imports (torch, onnxruntime, the app) happen inside each command, so `tailor --help` is
instant and a CPU-only server never loads torch. Errors print one line naming the file and exit 2.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Tailor: draft garment masks for annotators.")
console = Console(stderr=True)
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default"


@app.callback()
def _root() -> None:
    """Tailor: draft garment masks for annotators."""


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="dataset folder: images/, masks/, labels.txt")],
    out: Annotated[Path, typer.Option(help="run folder: checkpoints, curves.png, confusion.png")],
    config: Annotated[Optional[Path], typer.Option(help="YAML/JSON file of TrainConfig fields")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override the config's epochs")] = None,
    init: Annotated[Optional[Path], typer.Option(help="model directory to fine-tune from")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads")] = None,
    max_images: Annotated[Optional[int], typer.Option(help="use only the first N images (smoke runs)")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="stop after N optimiser steps (smoke runs)")] = None,
    fresh: Annotated[bool, typer.Option(help="ignore an existing checkpoint in --out instead of resuming")] = False,
) -> None:
    """Train (or fine-tune) a U-Net; resumes from OUT/last when it exists. Works under torchrun."""
    from models.card import ModelDirError
    from models.taxonomy import TaxonomyError
    from training.config import TrainConfig
    from training.dataset import DatasetError

    try:
        cfg = TrainConfig.from_file(config, epochs=epochs, threads=threads, max_images=max_images, max_steps=max_steps)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    from training.train import train as run_training
    try:
        state = run_training(data, out, cfg, init_model=init, resume=not fresh, log=console.print)
    except (DatasetError, TaxonomyError, ModelDirError, FileNotFoundError) as exc:
        fail(str(exc))
    if state.get("best"):
        console.print(f"best val mIoU {state['best']['miou']:.4f} at epoch {state['best']['epoch']}; "
                      f"export with: tailor export --checkpoint {out / 'best'} --out MODEL_DIR")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder written by train (RUN/best or RUN/last)")],
    out: Annotated[Path, typer.Option(help="model directory to create")],
    data: Annotated[Optional[Path], typer.Option(help="dataset whose first photos are used for the parity check")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing model directory")] = False,
    notes: Annotated[str, typer.Option(help="how the model was made, for the card (free text)")] = "",
) -> None:
    """Write model.onnx, weights.safetensors and card.json, checking ONNX/torch parity first."""
    from training.export import export_model

    images = _parity_photos(data) if data else None
    try:
        card = export_model(checkpoint, out, parity_images=images, overwrite=overwrite, notes=notes)
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as exc:
        fail(str(exc))
    p = card["parity"]
    console.print(f"exported {out} version {card['version']}: parity {p['agreement']:.5f} on {p['images']} "
                  f"image(s) at {p['sizes']}; val mIoU {card['metrics']['miou']}")


@app.command()
def quantize(
    model: Annotated[Path, typer.Option(help="fp32 model directory")] = DEFAULT_MODEL,
    data: Annotated[Path, typer.Option(help="its training dataset: train split calibrates, val split scores")] = ...,
    out: Annotated[Path, typer.Option(help="int8 model directory to create")] = ...,
    calibration: Annotated[int, typer.Option(min=1, help="train-split photos to calibrate on")] = 50,
    max_miou_drop: Annotated[float, typer.Option(min=0.0, help="refuse if val mIoU falls by more")] = 0.005,
    overwrite: Annotated[bool, typer.Option(help="replace an existing directory")] = False,
) -> None:
    """Write an int8 copy of MODEL for CPU serving, refused unless it scores like the original on val."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from models.card import ModelDirError
    from training.dataset import DatasetError
    from training.quantize import QuantizationRejected, quantize_model

    try:  # ONNX Runtime's quantizer needs onnx and sympy, which come with the training extra
        import onnx  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
        import sympy  # noqa: F401
    except ImportError as exc:
        fail(f"tailor quantize needs the training extra ({exc.name} is missing): pip install -e '.[train]'")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("quantize, then score fp32 and int8 on val", total=None)

            card = quantize_model(model, out, data, calibration, max_miou_drop, overwrite,
                                  lambda done, total: progress.update(task, completed=done, total=total))
    except (FileNotFoundError, FileExistsError, ModelDirError, DatasetError, QuantizationRejected, ValueError) as exc:
        fail(str(exc))
    p = card["precision"]
    console.print(f"wrote {out} version {card['version']}: val mIoU {card['metrics']['miou']:.4f} (fp32 "
                  f"{p['fp32_val_miou']:.4f}), label agreement with fp32 {p['agreement_with_fp32']:.4f} on "
                  f"{p['val_images']} val photos; calibrated on {p['calibration_images']}", highlight=False)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="model directory")] = DEFAULT_MODEL,
    data: Annotated[Path, typer.Option(help="dataset folder: images/, masks/, labels.txt")] = ...,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the metrics JSON here")] = None,
    backend: Annotated[str, typer.Option(help="onnx (CPU, default) or torch")] = "onnx",
    threads: Annotated[Optional[int], typer.Option(help="inference threads")] = None,
) -> None:
    """Score MODEL on DATA at native image size: mIoU, pixel accuracy, per-class IoU."""
    from rich.console import Console as OutConsole

    from models.card import ModelDirError
    from models.taxonomy import TaxonomyError
    from service.jobs.evaluate import evaluate as run_eval, results_table, write_json
    from training.dataset import DatasetError

    try:
        result = run_eval(model, data, backend=backend, threads=threads)
    except (DatasetError, TaxonomyError, ModelDirError, ValueError) as exc:
        fail(str(exc))
    OutConsole().print(results_table(result))
    if json_out:
        write_json(result, json_out)
        console.print(f"wrote {json_out}")


def _settings(**overrides):
    """Settings from the environment/.env/settings file, with command-line values on top; one-line errors."""
    from pydantic import ValidationError

    from service.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail("bad settings: " + "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                                          for e in exc.errors()))
    except ValueError as exc:  # e.g. an unreadable TAILOR_SETTINGS_FILE
        fail(str(exc))


@app.command()
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
    settings = _settings(host=host, port=port, model_dir=model, backend=backend, threads=threads)
    import uvicorn

    from service.app import create_app
    from service.logs import LEVELS, configure_logging

    if log_level.lower() not in LEVELS:
        fail(f"--log-level {log_level!r}: use one of {', '.join(LEVELS)}")
    configure_logging(log_level)

    # One worker process: the model lives in it once; concurrency comes from the engine, not forks.
    # Jobs (retraining above all) run in a separate `tailor worker` child, never in the server process.
    supervisor = None
    if settings.start_worker:
        import signal

        from service.jobs.supervisor import WorkerSupervisor

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


@app.command()
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from models.card import ModelDirError
    from service.drafting.batch import predict_files
    from service.drafting.engine import Engine
    from service.drafting.photo_files import collect_inputs
    from service.drafting.predictor import load_predictor

    settings = _settings(model_dir=model, backend=backend, threads=threads)
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
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
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


def _parity_photos(data: Path, count: int = 4):
    from models.images import decode_image
    from training.dataset import DatasetError, scan_dataset

    try:
        folder = scan_dataset(data, require_masks=False)
    except DatasetError as exc:
        fail(str(exc))
    return [decode_image(s.image) for s in folder.samples[:count]]


from service.cli_store import corrections_app, db_app, models_app  # noqa: E402

app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(corrections_app, name="corrections")

from service.cli_worklists import worklist_app  # noqa: E402

app.add_typer(worklist_app, name="worklist")

from service.cli_jobs import jobs_app, worker  # noqa: E402

app.add_typer(jobs_app, name="jobs")
app.command("worker")(worker)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("train", "worker"):  # the commands that train on this CPU
        from training.allocator import restart_with_huge_pages

        restart_with_huge_pages()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
