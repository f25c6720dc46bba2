"""`tailor train | export | quantize | evaluate | pseudo-label`: a model's life from a dataset to a scored model.

torch is imported by the commands that need it (train, export), never by `tailor serve` on a CPU machine;
quantize and evaluate run on ONNX Runtime.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
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
from training.pseudo_label import MIN_CONFIDENCE, SCALES, write_pseudo_labels
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
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override any TrainConfig field: "
                                                      "--set lr=0.0005 --set 'decoder_channels=[64, 32, 16, 16, 16]'")] = None,
) -> None:
    """Train (or fine-tune) a U-Net; resumes from OUT/last when it exists. Works under torchrun."""
    from training.train import train as run_training  # torch

    try:
        overrides = parse_overrides(set_ or [])
        options = {"epochs": epochs, "threads": threads, "max_images": max_images, "max_steps": max_steps}
        # An option left unset must not undo the same field given with --set.
        cfg = TrainConfig.from_file(config, **{**overrides, **{k: v for k, v in options.items() if v is not None}})
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    try:
        state = run_training(data, out, cfg, init_model=init, resume=not fresh, log=console.print)
    except (DatasetError, TaxonomyError, ModelDirError, FileNotFoundError) as exc:
        fail(str(exc))
    if state.get("best"):
        console.print(f"best val mIoU {state['best']['miou']:.4f} at epoch {state['best']['epoch']}; "
                      f"export with: tailor export --checkpoint {out / 'best'} --out MODEL_DIR")


def parse_overrides(items: list[str]) -> dict:
    """["key=value", ...] -> {key: value}, each value read as YAML (numbers, lists, null, strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: cannot read the value ({exc})") from None
    return out


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
    out: Annotated[Path, typer.Option(help="model directory to create: MODEL's fp32 graph and weights, plus "
                                                   "model.int8.onnx, which CPU serving then uses by default")] = ...,
    calibration: Annotated[int, typer.Option(min=1, help="train-split photos to calibrate on")] = 50,
    max_miou_drop: Annotated[float, typer.Option(min=0.0, help="refuse if val mIoU falls by more")] = 0.005,
    overwrite: Annotated[bool, typer.Option(help="replace an existing directory")] = False,
) -> None:
    """Add an int8 graph to a copy of MODEL for CPU serving, refused unless it scores like fp32 on val (mIoU
    within --max-miou-drop, no class down by more than 0.02, 99% of pixels labelled alike)."""
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
    console.print(f"wrote {out} version {card['version']}: int8 val mIoU {card['metrics']['miou']:.4f} (fp32 "
                  f"{p['fp32_val_miou']:.4f}), label agreement with fp32 {p['agreement_with_fp32']:.4f} on "
                  f"{p['val_images']} val photos; calibrated on {p['calibration_images']}", highlight=False)


def evaluate(
    model: Annotated[Path, typer.Option(help="model directory")] = DEFAULT_MODEL_DIR,
    data: Annotated[Path, typer.Option(help="dataset folder: images/, masks/, labels.txt")] = ...,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the metrics JSON here")] = None,
    backend: Annotated[str, typer.Option(help="onnx (CPU, default) or torch")] = "onnx",
    threads: Annotated[Optional[int], typer.Option(help="inference threads")] = None,
    split: Annotated[str, typer.Option(help="auto: only the val split when DATA is the model's own training "
                                            "folder, else every photo; or all, val, train")] = "auto",
) -> None:
    """Score MODEL on DATA at native image size: mIoU, pixel accuracy, per-class IoU."""
    try:
        result = run_evaluation(model, data, backend=backend, threads=threads, split=split)
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


def pseudo_label(
    photos: Annotated[Path, typer.Option(help="folder of unlabeled photos (or a dataset with images/)")],
    out: Annotated[Path, typer.Option(help="folder to create: images/, masks/ and pseudo.json")],
    model: Annotated[Path, typer.Option(help="the teacher model directory")] = DEFAULT_MODEL_DIR,
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="pixels whose averaged winning "
                                                  "probability is lower are ignored in training")] = MIN_CONFIDENCE,
    scales: Annotated[str, typer.Option(help="teacher input long sides as multiples of the model's, comma list")]
    = ",".join(map(str, SCALES)),
    flip: Annotated[bool, typer.Option(help="also average over mirror images")] = True,
    threads: Annotated[Optional[int], typer.Option(help="inference threads")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing folder")] = False,
) -> None:
    """Draft unlabeled photos with a teacher (flip and multi-scale averaged) for self-training: train a
    student with `--set pseudo_labels=OUT` beside the real masks."""
    try:
        scale_list = tuple(float(x) for x in scales.split(","))
    except ValueError:
        fail(f"--scales {scales!r}: expected numbers separated by commas")
    try:
        with Progress(*PROGRESS, console=console, transient=True) as progress:
            task = progress.add_task("pseudo-label", total=None)
            manifest = write_pseudo_labels(model, photos, out, scale_list, flip, min_confidence, threads, overwrite,
                                           lambda done, total: progress.update(task, completed=done, total=total))
    except (FileExistsError, ModelDirError, DatasetError, ValueError) as exc:
        fail(str(exc))
    console.print(f"wrote {out}: {manifest['images']} photos drafted by {manifest['teacher']['version']}, "
                  f"{manifest['kept_pixel_share']:.1%} of their pixels kept (confidence >= {min_confidence})",
                  highlight=False)
