"""Offline pre-annotation of local files (`tailor predict`): PNG masks, one COCO file and a CSV summary.

It uses the same engine, limits and result builders as the HTTP service, so a folder run offline
yields the masks the server would have given. A file that cannot be read is reported and skipped.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from service.api.inputs import InputError, declared_pixels, decode_upload
from service.engine import Engine
from service.formats import png as png_format
from service.jobs import IMAGE_SUFFIXES, write_atomic
from service.qa.left_right import split_taxonomy
from service.results import class_summaries, coco_document, coco_image_entry, output_classes


@dataclass
class OfflineReport:
    written: list[str] = field(default_factory=list)              # mask file names
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input path, reason)


def collect_inputs(paths: list[Path]) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Files to predict as (path, output stem), and arguments that name nothing usable.

    Folders are searched recursively for image files; output stems keep the sub-path (a/b.jpg ->
    a__b) so same-named photos in different folders do not overwrite each other's masks.
    """
    found: list[tuple[Path, str]] = []
    missing: list[tuple[str, str]] = []
    for arg in paths:
        if arg.is_dir():
            files = sorted(p for p in arg.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                missing.append((str(arg), "folder holds no image files"))
            found += [(p, "__".join(p.relative_to(arg).with_suffix("").parts)) for p in files]
        elif arg.is_file():
            found.append((arg, arg.stem))
        else:
            missing.append((str(arg), "no such file or folder"))
    seen: dict[str, int] = {}
    unique = []
    for path, stem in found:
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        unique.append((path, stem if n == 0 else f"{stem}-{n + 1}"))
    return unique, missing


def predict_files(engine: Engine, inputs: list[tuple[Path, str]], out: Path,
                  on_step: Callable[[Path, str | None], None] | None = None,
                  left_right: bool = False, concurrency: int | None = None) -> OfflineReport:
    """Predict each input; write out/masks/<stem>.png, out/coco.json and out/summary.csv.

    With `left_right`, masks, COCO categories and CSV columns use the split class list (paired classes as
    <name>_left / <name>_right, the person's own sides: their left is on the image's right).
    `concurrency` photos are in work at once (default: one more than the engine's batch size), so one
    photo's decoding, encoding and writing overlap another's model call, and a GPU gets whole batches;
    results are still taken in input order, so ids and files do not depend on timing."""
    base, version = engine.predictor.taxonomy, engine.predictor.version
    taxonomy = split_taxonomy(base).taxonomy if left_right else base
    (out / "masks").mkdir(parents=True, exist_ok=True)

    def draft(item: tuple[Path, str]) -> tuple | str:
        """(mask name, COCO image entry, its annotations, class summaries), or why the photo was skipped."""
        path, stem = item
        try:
            data = path.read_bytes()
        except OSError as exc:
            return f"{path}: cannot read ({exc.strerror or exc})"
        with engine.pixels.hold(declared_pixels(data, engine.settings)):
            try:
                pred = engine.predict(*decode_upload(data, str(path), engine.settings, engine.predictor.size_for))
            except InputError as exc:
                return str(exc.detail)
            mask_name = f"masks/{stem}.png"
            labels, _ = output_classes(pred.labels, base, left_right)
            write_atomic(out / mask_name, png_format.encode(labels))
            entry, anns = coco_image_entry(0, str(path), labels, pred.confidence, taxonomy, pred.difficulty)
            return mask_name, entry, anns, class_summaries(labels, pred.confidence, taxonomy)

    report = OfflineReport()
    images, annotations, rows = [], [], []
    workers = concurrency or engine.batcher.max_size + 1
    for (path, _), result in zip(inputs, _in_order(draft, inputs, workers)):
        if isinstance(result, str):
            report.failures.append((str(path), result))
        else:
            mask_name, entry, anns, classes = result
            entry["id"] = len(images) + 1  # numbered in input order, successes only
            images.append(entry)
            annotations += [{**a, "image_id": entry["id"]} for a in anns]
            rows.append((path, mask_name, entry, classes))
            report.written.append(mask_name)
        if on_step:
            on_step(path, result if isinstance(result, str) else None)
    write_atomic(out / "coco.json", json.dumps(coco_document(images, annotations, taxonomy, version)))
    write_atomic(out / "summary.csv", _csv(rows, taxonomy.names))
    return report


def _in_order(fn: Callable, items: list, workers: int) -> Iterator:
    """fn(item) for each item on `workers` threads, yielded in input order, at most 2 x workers ahead
    (so a long folder never holds more than a few predictions in memory). If the consumer stops (a
    cancelled job raises from on_step), work not yet started is dropped."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="tailor-draft") as pool:
        pending: deque[Future] = deque()
        rest = iter(items)
        try:
            for item in itertools.islice(rest, 2 * workers):
                pending.append(pool.submit(fn, item))
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(rest, 1):
                    pending.append(pool.submit(fn, item))
                yield result
        finally:
            for future in pending:
                future.cancel()


def _csv(rows, names: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    # One area column per class makes the sheet sortable ("photos with the most shoes first").
    w.writerow(["file", "mask", "width", "height", "difficulty", "classes"] + [f"area_{n}" for n in names])
    for path, mask_name, entry, classes in rows:
        areas = {c["name"]: c["area"] for c in classes}
        w.writerow([str(path), mask_name, entry["width"], entry["height"], f"{entry['difficulty']:.4f}",
                    ";".join(c["name"] for c in classes if c["id"] != 0)] + [areas.get(n, 0) for n in names])
    return buf.getvalue()
