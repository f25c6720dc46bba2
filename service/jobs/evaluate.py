"""Score a model directory on any dataset folder, at the images' native size, through the engine as served.

Intersections and unions are summed over the photos scored before averaging over the classes that occur
in their ground truth, so small images do not weigh more than large ones. On the very folder the model was
trained on, only its val split is scored by default: the other photos' scores would flatter it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from service.drafting.engine import Engine
from service.drafting.photo_files import write_atomic
from service.drafting.predictor import load_predictor
from service.settings import Settings
from training.dataset import DatasetFolder, Sample, load_mask, scan_dataset
from training.metrics import confusion, scores


SPLITS = ("auto", "all", "val", "train")


def evaluate(model_dir: Path, data_dir: Path, backend: str = "onnx", threads: int | None = None,
             show_progress: bool = True, settings: Settings | None = None, split: str = "all") -> dict:
    """Draft the photos of the dataset folder as the service would (Engine.draft) and score the labels.

    `split`: "all" photos, the "val" or "train" side of the model's own split (its card's val_percent), or
    "auto": val when the folder is the one the model was trained on (same fingerprint), else all.
    `settings` gives the limits (default: the environment's, with this model, backend and threads)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use {', '.join(SPLITS)}")
    options = {"model_dir": Path(model_dir), "backend": backend, "threads": threads}
    settings = settings.model_copy(update=options) if settings else Settings(**options)
    engine = Engine(load_predictor(model_dir, settings), settings)
    try:
        return _score(engine, data_dir, show_progress, split)
    finally:
        engine.close()


def choose_samples(folder: DatasetFolder, card: dict, split: str) -> tuple[list[Sample], str]:
    """The samples `split` asks for, and the split actually scored ("auto" resolved)."""
    training = card.get("training") or {}
    if split == "auto":
        same = training.get("data_fingerprint") and folder.fingerprint() == training["data_fingerprint"]
        split = "val" if same else "all"
    if split == "all":
        return folder.samples, split
    train, val = folder.split(float(training.get("config", {}).get("val_percent", 10.0)))
    return (val if split == "val" else train), split


def _score(engine: Engine, data_dir: Path, show_progress: bool, split: str) -> dict:
    predictor = engine.predictor
    folder = scan_dataset(data_dir)
    samples, split = choose_samples(folder, predictor.card, split)
    if not samples:
        raise ValueError(f"{data_dir}: no photos in its {split} split")
    names = predictor.taxonomy.names
    lut = predictor.taxonomy.lut_for_labels(folder.labels, origin=str(folder.root / "labels.txt"))
    conf = np.zeros((len(names), len(names)), dtype=np.int64)
    columns = (TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("", total=len(samples))
        for sample in samples:
            # Whole photos, as scores have always been taken: the reduced JPEG decode that serving uses moves a
            # small model's labels (a 128 px model on CCP photos decoded at 1/4 scores 0.52 against its own).
            with engine.draft(sample.image, str(sample.image), full_pixels=True) as draft:
                truth = load_mask(sample, lut, len(folder.labels), draft.labels.shape)
                conf += confusion(truth, draft.labels, len(names))
            progress.advance(task)
    result = scores(conf, names)
    result.update({"images": len(samples), "split": split, "model_version": predictor.version, "data": str(data_dir),
                   "backend": predictor.backend.name, "confusion": conf.tolist()})
    return result


def results_table(result: dict) -> Table:
    which = {"all": "", "val": " of its val split (never trained on)", "train": " of its train split"}[result["split"]]
    table = Table(title=f"{result['data']}: {result['images']} images{which}, model {result['model_version']}")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, iou in result["per_class"].items():
        table.add_row(name, "-" if iou is None else f"{iou:.3f}")
    table.add_section()
    table.add_row("mIoU", f"{result['miou']:.3f}")
    table.add_row("pixel accuracy", f"{result['pixel_accuracy']:.3f}")
    table.add_row("changed-pixel fraction", f"{result['changed_pixel_fraction']:.3f}")
    return table


def write_json(result: dict, path: Path) -> None:
    """Atomic write: a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=2))
