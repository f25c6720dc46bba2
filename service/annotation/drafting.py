"""Drafting photos into a worklist: check every photo first, then predict and store them one by one.

A batch is all or nothing: a photo that cannot be read stops it before any drafting (the error names
the file), and a failure part-way removes the items this call added, so no half batch is left.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from service.qa.settings import QAThresholds
from service.store.files import FileStore
from service.store.tables import WorkItem, Worklist
from service.store.worklists import WorklistError, add_item, image_id_from_name
from models.images import ImageDecodeError, decode_image, decode_image_for

SizeRule = Callable[[int, int], tuple[int, int]]  # the model's (H, W) -> input (h, w), Predictor.size_for
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif")


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


def check_photos(photos: Sequence[Photo], existing: Iterable[str] = (), max_pixels: int | None = None,
                 size_for: SizeRule | None = None) -> None:
    """Every photo decodes and has an id not used twice; otherwise one error naming every bad file.
    With the model's `size_for`, a large JPEG is checked at the reduced size drafting decodes it at
    (libjpeg still reads all of its data)."""
    seen, problems = set(existing), []
    for p in photos:
        if p.image_id in seen:
            problems.append(f"{p.name}: image id {p.image_id!r} is already in the worklist or this batch")
        seen.add(p.image_id)
        try:
            if size_for is None:
                decode_image(p.data, origin=p.name, max_pixels=max_pixels)
            else:
                decode_image_for(p.data, size_for, origin=p.name, max_pixels=max_pixels)
        except ImageDecodeError as exc:
            problems.append(str(exc))
    if problems:
        raise WorklistError("nothing was added: " + "; ".join(problems[:20])
                            + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))


def draft_into(session: Session, files: FileStore, wl: Worklist, photos: Sequence[Photo],
               predict: Callable[[np.ndarray, tuple[int, int]], object], size_for: SizeRule,
               thresholds: QAThresholds = QAThresholds(), max_pixels: int | None = None,
               progress: Callable[[Photo], None] | None = None) -> list[WorkItem]:
    """Predict each photo with `predict(pixels, (H, W)) -> Prediction` (Predictor.predict) and store it as
    an item of `wl`; photos are decoded as large as the model's `size_for` needs (decode_image_for)."""
    check_photos(photos, [i.image_id for i in wl.items], max_pixels, size_for)
    added: list[WorkItem] = []
    try:
        for p in photos:
            image, shape = decode_image_for(p.data, size_for, origin=p.name, max_pixels=max_pixels)
            pred = predict(image, shape)
            if pred.model_version != wl.model_version:
                raise WorklistError(f"worklist {wl.name!r} is drafted by {wl.model_version}, but the model now "
                                    f"serving is {pred.model_version}; start a new worklist")
            added.append(add_item(session, files, wl, p.image_id, p.data, shape, pred.labels, pred.confidence,
                                  pred.taxonomy, thresholds))
            if progress is not None:
                progress(p)
    except BaseException:
        session.rollback()
        for item in added:
            session.delete(item)
        session.commit()
        raise
    return added
