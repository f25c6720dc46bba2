"""Drafting photos into a worklist: check every photo first, then predict and store them one by one.

A batch is all or nothing: a photo that cannot be read stops it before any drafting (the error names
the file), and a failure part-way removes the items this call added, so no half batch is left.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from service.drafting.engine import Engine
from service.drafting.errors import PhotoRejected
from service.drafting.photo_files import IMAGE_SUFFIXES
from service.store.files import FileStore
from service.store.tables import WorkItem, Worklist
from service.store.worklists import WorklistError, add_item, image_id_from_name
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
