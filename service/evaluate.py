"""Score a model directory on any dataset folder, at the images' native size, via the served path.

Intersections and unions are summed over the whole dataset before averaging over the classes that
occur in its ground truth, so small images do not weigh more than large ones.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from service.inference import Predictor
from training.dataset import load_samples, scan_dataset
from training.metrics import confusion, scores


def evaluate(model_dir: Path, data_dir: Path, backend: str = "onnx", threads: int | None = None,
             show_progress: bool = True) -> dict:
    predictor = Predictor(model_dir, backend=backend, threads=threads)
    folder = scan_dataset(data_dir)
    names = predictor.taxonomy.names
    conf = np.zeros((len(names), len(names)), dtype=np.int64)
    columns = (TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("", total=len(folder.samples))
        for _, image, mask in load_samples(folder, folder.samples, predictor.taxonomy):
            conf += confusion(mask, predictor.predict(image).labels, len(names))
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, path)
