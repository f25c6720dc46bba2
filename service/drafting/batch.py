"""Drafting many photos: a few in work at once, taken in input order, each one's mask written as it comes.

`tailor predict` and batch_predict jobs both draft through here, so a folder drafted offline, by a job or
through /v1/batches gets the same masks, classes and COCO entries; write_summary adds coco.json and
summary.csv (classes present and difficulty per photo). A photo that cannot be drafted is reported, not fatal.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.taxonomy import Taxonomy
from service.csv_cells import csv_text
from service.drafting.answer import coco_document, coco_image_entry, described_classes, output_classes
from service.drafting.engine import Engine
from service.drafting.errors import PhotoRejected
from service.drafting.left_right_classes import split_taxonomy
from service.drafting.photo_files import write_atomic
from service.drafting.predictor import Prediction
from service.formats import png as png_format


@dataclass
class Photo:
    """One photo to draft: where it is, what to call it, and the stem of its output files."""

    path: Path
    name: str        # for messages, results and COCO file names: a relative path or an uploaded file's name
    stem: str        # masks/<stem>.png


@dataclass
class PhotoDraft:
    """What drafting one photo produced (its mask is already written), as stored in a job's results."""

    index: int
    name: str
    source: str                  # the file drafted, as summary.csv and coco.json name it
    mask: str                    # masks/<stem>.png, relative to the output folder
    width: int
    height: int
    difficulty: float
    model_version: str
    class_names: list[str]
    classes: list[dict]          # id, name, area, score, and each asked-for format under "encodings"
    coco: dict                   # {"image": ..., "annotations": [...]}, image id = index + 1

    def to_dict(self) -> dict:
        return asdict(self)


def classes_of(taxonomy: Taxonomy, left_right: bool) -> Taxonomy:
    """The class list of the drafts: the model's, or its left/right split."""
    return split_taxonomy(taxonomy).taxonomy if left_right else taxonomy


def draft_photos(engine: Engine, photos: Sequence[Photo], out: Path, *, formats: Sequence[str] = (),
                 left_right: bool = False, workers: int | None = None,
                 skip: Callable[[int], bool] = lambda _index: False) -> Iterator[tuple[int, PhotoDraft | str]]:
    """(index, PhotoDraft or the reason it was refused) for each photo not skipped, in input order.

    `workers` photos are in work at once (default: one more than the engine's batch size), so one photo's
    decoding, encoding and writing overlap another's model call and a GPU gets whole batches; results are
    still taken in input order, so ids and files do not depend on timing. With `left_right`, masks and
    classes use the split class list (paired classes as <name>_left / <name>_right, the person's own sides).
    """
    (out / "masks").mkdir(parents=True, exist_ok=True)

    def draft(item: tuple[int, Photo]) -> tuple[int, PhotoDraft | str]:
        index, photo = item
        try:
            with engine.draft(photo.path, photo.name) as d:
                return index, write_draft(out, index, photo, d.prediction, left_right, formats)
        except PhotoRejected as exc:
            return index, str(exc)

    todo = [(i, p) for i, p in enumerate(photos) if not skip(i)]
    yield from _in_order(draft, todo, workers or engine.batcher.max_size + 1)


def write_draft(out: Path, index: int, photo: Photo, pred: Prediction, left_right: bool = False,
                formats: Sequence[str] = ()) -> PhotoDraft:
    """Write out/masks/<stem>.png of one photo's draft and describe it (classes, COCO entry, image id index + 1)."""
    labels, taxonomy = output_classes(pred.labels, pred.taxonomy, left_right)
    mask = f"masks/{photo.stem}.png"
    write_atomic(out / mask, png_format.encode(labels))
    image, annotations = coco_image_entry(index + 1, photo.name, labels, pred.confidence, taxonomy, pred.difficulty)
    h, w = labels.shape
    return PhotoDraft(index, photo.name, str(photo.path), mask, int(w), int(h), round(float(pred.difficulty), 4),
                      pred.model_version, taxonomy.names, described_classes(labels, pred.confidence, taxonomy, formats),
                      {"image": image, "annotations": annotations})


@dataclass
class BatchReport:
    written: list[str] = field(default_factory=list)              # mask files, relative to the output folder
    failures: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason)


def predict_files(engine: Engine, inputs: Sequence[tuple[Path, str]], out: Path,
                  on_step: Callable[[Path, str | None], None] | None = None, left_right: bool = False,
                  concurrency: int | None = None) -> BatchReport:
    """`tailor predict`: draft each (path, stem); write out/masks/<stem>.png, out/coco.json, out/summary.csv.

    `on_step(path, reason or None)` follows each photo in order; raising from it stops the run.
    """
    photos = [Photo(path, str(path), stem) for path, stem in inputs]
    report, drafts = BatchReport(), []
    for index, result in draft_photos(engine, photos, out, left_right=left_right, workers=concurrency):
        if isinstance(result, str):
            report.failures.append((str(photos[index].path), result))
        else:
            drafts.append(result)
            report.written.append(result.mask)
        if on_step:
            on_step(photos[index].path, result if isinstance(result, str) else None)
    write_summary(out, drafts, classes_of(engine.predictor.taxonomy, left_right), engine.predictor.version)
    return report


def write_summary(out: Path, drafts: Sequence[PhotoDraft], taxonomy: Taxonomy, version: str) -> None:
    """out/coco.json (images numbered 1.. in order, named by their files) and out/summary.csv."""
    images, annotations = [], []
    for number, d in enumerate(drafts, 1):
        images.append({**d.coco["image"], "id": number, "file_name": d.source})
        annotations += [{**a, "image_id": number} for a in d.coco["annotations"]]
    write_atomic(out / "coco.json", json.dumps(coco_document(images, annotations, taxonomy, version)))
    write_atomic(out / "summary.csv", _csv(drafts, taxonomy.names))


def _in_order(fn: Callable, items: list, workers: int) -> Iterator:
    """fn(item) for each item on `workers` threads, yielded in input order, at most 2 x workers ahead
    (so a long folder never holds more than a few drafts in memory). If the consumer stops (a
    cancelled job raises), work not yet started is dropped."""
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


def _csv(drafts: Sequence[PhotoDraft], names: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    # One area column per class makes the sheet sortable ("photos with the most shoes first").
    w.writerow(["file", "mask", "width", "height", "difficulty", "classes"] + [f"area_{n}" for n in names])
    for d in drafts:
        areas = {c["name"]: c["area"] for c in d.classes}
        w.writerow([csv_text(d.source), csv_text(d.mask), d.width, d.height, f"{d.difficulty:.4f}",
                    ";".join(c["name"] for c in d.classes if c["id"] != 0)] + [areas.get(n, 0) for n in names])
    return buf.getvalue()
