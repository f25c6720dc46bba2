"""`tailor train | export | quantize | evaluate`: a model's life from a dataset to a scored model directory.

torch is imported by the commands that need it (train, export), never by `tailor serve` on a CPU machine;
quantize and evaluate run on ONNX Runtime.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress

from models.card import ModelDirError
from models.images import decode_image
from models.taxonomy import TaxonomyError
from service.cli.console import PROGRESS, console, fail
from service.jobs.evaluate import evaluate as run_evaluation
from service.jobs.evaluate import results_table, write_json
from service.settings import DEFAULT_MODEL_DIR
from training.config import TrainConfig
from training.dataset import DatasetError, scan_dataset
from training.quantize import QuantizationRejected, quantize_model


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
    from training.train import train as run_training  # torch

    try:
        cfg = TrainConfig.from_file(config, epochs=epochs, threads=threads, max_images=max_images, max_steps=max_steps)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    try:
        state = run_training(data, out, cfg, init_model=init, resume=not fresh, log=console.print)
    except (DatasetError, TaxonomyError, ModelDirError, FileNotFoundError) as exc:
        fail(str(exc))
    if state.get("best"):
        console.print(f"best val mIoU {state['best']['miou']:.4f} at epoch {state['best']['epoch']}; "
                      f"export with: tailor export --checkpoint {out / 'best'} --out MODEL_DIR")


def export(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder written by train (RUN/best or RUN/last)")],
    out: Annotated[Path, typer.Option(help="model directory to create")],
    data: Annotated[Optional[Path], typer.Option(help="dataset whose first photos are used for the parity check")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing model directory")] = False,
    notes: Annotated[str, typer.Option(help="how the model was made, for the card (free text)")] = "",
) -> None:
    """Write model.onnx, weights.safetensors and card.json, checking ONNX/torch parity first."""
    from training.export import export_model  # torch

    images = _parity_photos(data) if data else None
    try:
        card = export_model(checkpoint, out, parity_images=images, overwrite=overwrite, notes=notes)
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as exc:
        fail(str(exc))
    p = card["parity"]
    console.print(f"exported {out} version {card['version']}: parity {p['agreement']:.5f} on {p['images']} "
                  f"image(s) at {p['sizes']}; val mIoU {card['metrics']['miou']}")


def quantize(
    model: Annotated[Path, typer.Option(help="fp32 model directory")] = DEFAULT_MODEL_DIR,
    data: Annotated[Path, typer.Option(help="its training dataset: train split calibrates, val split scores")] = ...,
    out: Annotated[Path, typer.Option(help="int8 model directory to create")] = ...,
    calibration: Annotated[int, typer.Option(min=1, help="train-split photos to calibrate on")] = 50,
    max_miou_drop: Annotated[float, typer.Option(min=0.0, help="refuse if val mIoU falls by more")] = 0.005,
    overwrite: Annotated[bool, typer.Option(help="replace an existing directory")] = False,
) -> None:
    """Write an int8 copy of MODEL for CPU serving, refused unless it scores like the original on val."""
    # ONNX Runtime's quantizer needs onnx and sympy, which come with the training extra: say so plainly.
    missing = [name for name in ("onnx", "sympy") if find_spec(name) is None]
    if missing:
        fail(f"tailor quantize needs the training extra ({missing[0]} is missing): pip install -e '.[train]'")
    try:
        with Progress(*PROGRESS, console=console, transient=True) as progress:
            task = progress.add_task("quantize, then score fp32 and int8 on val", total=None)
            card = quantize_model(model, out, data, calibration, max_miou_drop, overwrite,
                                  lambda done, total: progress.update(task, completed=done, total=total))
    except (FileNotFoundError, FileExistsError, ModelDirError, DatasetError, QuantizationRejected, ValueError) as exc:
        fail(str(exc))
    p = card["precision"]
    console.print(f"wrote {out} version {card['version']}: val mIoU {card['metrics']['miou']:.4f} (fp32 "
                  f"{p['fp32_val_miou']:.4f}), label agreement with fp32 {p['agreement_with_fp32']:.4f} on "
                  f"{p['val_images']} val photos; calibrated on {p['calibration_images']}", highlight=False)


def evaluate(
    model: Annotated[Path, typer.Option(help="model directory")] = DEFAULT_MODEL_DIR,
    data: Annotated[Path, typer.Option(help="dataset folder: images/, masks/, labels.txt")] = ...,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the metrics JSON here")] = None,
    backend: Annotated[str, typer.Option(help="onnx (CPU, default) or torch")] = "onnx",
    threads: Annotated[Optional[int], typer.Option(help="inference threads")] = None,
) -> None:
    """Score MODEL on DATA at native image size: mIoU, pixel accuracy, per-class IoU."""
    try:
        result = run_evaluation(model, data, backend=backend, threads=threads)
    except (DatasetError, TaxonomyError, ModelDirError, ValueError) as exc:
        fail(str(exc))
    Console().print(results_table(result))
    if json_out:
        write_json(result, json_out)
        console.print(f"wrote {json_out}")


def _parity_photos(data: Path, count: int = 4):
    try:
        folder = scan_dataset(data, require_masks=False)
    except DatasetError as exc:
        fail(str(exc))
    return [decode_image(s.image) for s in folder.samples[:count]]
