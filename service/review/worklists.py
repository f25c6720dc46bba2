"""Worklists as the team uses them: photos drafted into a batch, measured, split between annotators, listed.

Drafting a batch is all or nothing: a photo that cannot be read stops it before any drafting (the error
names the file), and a failure part-way removes the items this call added, so no half batch is left.
Each item keeps why its draft is hard and how long its correction should take (service.review.split).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from models.images import encode_png
from models.taxonomy import Taxonomy
from service.csv_cells import csv_text
from service.drafting.engine import Engine
from service.drafting.errors import PhotoRejected
from service.drafting.photo_files import IMAGE_SUFFIXES
from service.review.delivery.items import DeliveryError, check_image_id, sanitize_image_id
from service.review.split import (CSV_COLUMNS, Assignment, DraftInfo, difficulty_reason, draft_info,
                                  predicted_effort_s, share_totals, split_batch)
from service.store.files import FileStore
from service.store.tables import WorkItem, Worklist, utcnow
from service.store.worklists import WorklistError, clean_names, insert_item, item_correction
from service.thresholds import QAThresholds

PHOTO_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES - {".gif"}))  # a worklist's photos are stills


@dataclass
class Photo:
    image_id: str
    name: str            # where it came from, for messages
    data: bytes


def photos_in(paths: Sequence[Path]) -> list[Photo]:
    """Photos from files and folders (a folder: its photo files, sorted by name, not recursive)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in PHOTO_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise WorklistError(f"{p}: no such file or folder")
    if not files:
        raise WorklistError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return [Photo(image_id_from_name(f.name), str(f), f.read_bytes()) for f in files]


def check_photos(engine: Engine, photos: Sequence[Photo], existing: Iterable[str] = ()) -> None:
    """Every photo reads and decodes as drafting will decode it (a large JPEG at the reduced size the
    model needs; libjpeg still reads all of its data), and has an id not used twice; otherwise one error
    naming every bad file."""
    seen, problems = set(existing), []
    for p in photos:
        if p.image_id in seen:
            problems.append(f"{p.name}: image id {p.image_id!r} is already in the worklist or this batch")
        seen.add(p.image_id)
        try:
            data, header = engine.read(p.data, p.name)
            engine.decode(data, p.name, header)
        except PhotoRejected as exc:
            problems.append(str(exc))
    if problems:
        raise WorklistError("nothing was added: " + "; ".join(problems[:20])
                            + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))


def draft_into(session: Session, files: FileStore, wl: Worklist, photos: Sequence[Photo], engine: Engine,
               thresholds: QAThresholds = QAThresholds(),
               progress: Callable[[Photo], None] | None = None) -> list[WorkItem]:
    """Draft each photo with the engine and store it as an item of `wl`; all or nothing: WorklistError
    ("nothing was added: ...") when a photo is refused, or the model changed since the worklist began."""
    check_photos(engine, photos, [i.image_id for i in wl.items])
    added: list[WorkItem] = []
    try:
        for p in photos:
            with engine.draft(p.data, p.name) as d:
                if d.model_version != wl.model_version:
                    raise WorklistError(f"worklist {wl.name!r} is drafted by {wl.model_version}, but the model now "
                                        f"serving is {d.model_version}; start a new worklist")
                added.append(add_item(session, files, wl, p.image_id, p.data, d.labels.shape, d.labels,
                                      d.confidence, d.taxonomy, thresholds))
            if progress is not None:
                progress(p)
    except BaseException as exc:
        session.rollback()
        for item in added:
            session.delete(item)
        session.commit()
        if isinstance(exc, WorklistError):
            raise WorklistError(f"nothing was added: {exc}") from None
        raise
    return added


def image_id_from_name(filename: str) -> str:
    """A photo's id in a batch: its file name without folders and extension ('a/b/1005.jpg' -> '1005'),
    with characters a file name cannot safely hold replaced by '_'."""
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    try:
        return sanitize_image_id(stem)
    except DeliveryError as exc:
        raise WorklistError(str(exc)) from None


def add_item(session: Session, files: FileStore, wl: Worklist, image_id: str, image_bytes: bytes,
             photo_shape: tuple[int, int], labels: np.ndarray, confidence: np.ndarray, taxonomy: Taxonomy,
             thresholds: QAThresholds = QAThresholds()) -> WorkItem:
    """Store a drafted photo in the worklist with its measures (classes, difficulty, predicted effort, why).

    `photo_shape` is the (H, W) of the upright photo the caller drafted from `image_bytes`, so the bytes
    are not decoded once more here.
    """
    try:  # ids become file names in delivery packages, so the package's own rule applies from the start
        check_image_id(image_id)
    except DeliveryError as exc:
        raise WorklistError(str(exc)) from None
    if taxonomy.tag != wl.taxonomy:
        raise WorklistError(f"worklist {wl.name!r} is in taxonomy {wl.taxonomy}, the draft in {taxonomy.tag}")
    shape = tuple(photo_shape[:2])
    if labels.shape != shape or confidence.shape != shape:
        raise WorklistError(f"{image_id}: draft is {labels.shape}, confidence {confidence.shape}, photo {shape}")
    info = draft_info(image_id, labels, confidence, taxonomy, thresholds)
    confidence_png = encode_png(np.clip(np.rint(confidence * 255.0), 0, 255).astype(np.uint8))
    measures = {k: v for k, v in asdict(info).items() if k != "image_id"}
    return insert_item(session, files, wl, image_id, image_bytes, shape, encode_png(labels.astype(np.uint8)),
                       confidence_png, draft_classes=info.classes(), difficulty=round(info.difficulty, 4),
                       predicted_effort_s=round(predicted_effort_s(info, thresholds), 1),
                       reason=difficulty_reason(info, thresholds), info=measures)


def assign(session: Session, wl: Worklist, annotators: list[str] | None = None,
           capacity: dict[str, float] | None = None, thresholds: QAThresholds = QAThresholds()) -> list[WorkItem]:
    """Split every item between the annotators by predicted effort (hardest first in each share)."""
    names = clean_names(annotators) if annotators else list(wl.annotators)
    if not names:
        raise WorklistError("name at least one annotator to split the worklist between")
    items = {i.image_id: i for i in wl.items}
    if not items:
        raise WorklistError(f"worklist {wl.name!r} has no images yet")
    infos = [DraftInfo(image_id=i.image_id, **i.info) for i in items.values()]
    try:
        assignments = split_batch(infos, names, thresholds, capacity=capacity)
    except ValueError as exc:
        raise WorklistError(str(exc)) from None
    now = utcnow()
    for a in assignments:
        item = items[a.image_id]
        item.annotator, item.position, item.predicted_effort_s = a.annotator, a.position, a.predicted_s
        item.reason = a.notes.rsplit("; ~", 1)[0]
        item.updated_at = now
    wl.annotators = names
    session.commit()
    return sorted(items.values(), key=lambda i: (names.index(i.annotator), i.position))


def worklist_csv(session: Session, wl: Worklist) -> str:
    """The team's spreadsheet: one row per photo, each annotator's share hardest first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS + ("predicted_effort_s", "position", "correction_status"))
    order = {n: k for k, n in enumerate(wl.annotators)}
    items = sorted(wl.items, key=lambda i: (order.get(i.annotator, len(order)), i.annotator or "",
                                            i.position or 0, i.image_id))
    for i in items:
        corr = item_correction(session, i)
        notes = "; ".join(t for t in (i.reason, i.notes) if t)
        w.writerow([csv_text(i.image_id), csv_text(i.annotator), ";".join(i.draft_classes), f"{i.difficulty:.4f}",
                    csv_text(notes), csv_text(i.qa_status), f"{i.predicted_effort_s:.1f}", i.position or "",
                    corr.status if corr else "none"])
    return buf.getvalue()


def shares(wl: Worklist) -> dict[str | None, dict[str, float]]:
    """Images and predicted seconds per annotator (unassigned items under None), to show the balance."""
    rows = [Assignment(i.image_id, i.annotator or "", i.position or 0, i.predicted_effort_s, i.difficulty,
                       tuple(i.draft_classes), i.reason) for i in wl.items]
    return {(k or None): {"images": v["images"], "predicted_s": round(v["predicted_s"], 1)}
            for k, v in share_totals(rows).items()}
