"""Score a model directory on any dataset folder, at the images' native size, through the engine as served.

Intersections and unions are summed over the whole dataset before averaging over the classes that
occur in its ground truth, so small images do not weigh more than large ones.
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
from training.dataset import load_mask, scan_dataset
from training.metrics import confusion, scores


def evaluate(model_dir: Path, data_dir: Path, backend: str = "onnx", threads: int | None = None,
             show_progress: bool = True, settings: Settings | None = None) -> dict:
    """Draft every photo of the dataset folder as the service would (Engine.draft) and score the labels.

    `settings` gives the limits (default: the environment's, with this model, backend and threads)."""
    options = {"model_dir": Path(model_dir), "backend": backend, "threads": threads}
    settings = settings.model_copy(update=options) if settings else Settings(**options)
    engine = Engine(load_predictor(model_dir, settings), settings)
    try:
        return _score(engine, data_dir, show_progress)
    finally:
        engine.close()


def _score(engine: Engine, data_dir: Path, show_progress: bool) -> dict:
    predictor = engine.predictor
    folder = scan_dataset(data_dir)
    names = predictor.taxonomy.names
    lut = predictor.taxonomy.lut_for_labels(folder.labels, origin=str(folder.root / "labels.txt"))
    conf = np.zeros((len(names), len(names)), dtype=np.int64)
    columns = (TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("", total=len(folder.samples))
        for sample in folder.samples:
            # Whole photos, as scores have always been taken: the reduced JPEG decode that serving uses moves a
            # small model's labels (a 128 px model on CCP photos decoded at 1/4 scores 0.52 against its own).
            with engine.draft(sample.image, str(sample.image), full_pixels=True) as draft:
                truth = load_mask(sample, lut, len(folder.labels), draft.labels.shape)
                conf += confusion(truth, draft.labels, len(names))
            progress.advance(task)
    result = scores(conf, names)
    result.update({"images": len(folder.samples), "model_version": predictor.version, "data": str(data_dir),
                   "backend": predictor.backend.name, "confusion": conf.tolist()})
    return result


def results_table(result: dict) -> Table:
    table = Table(title=f"{result['data']}: {result['images']} images, model {result['model_version']}")
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
