"""Worklists in the store: create an annotation batch, add drafted photos, split it, keep QA state.

Adding an item is one transaction like a correction: image, draft and confidence PNGs are staged,
the row committed, then the files renamed into place; a failure leaves no row and no stray file.
"""
from __future__ import annotations

import csv
import io

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.images import encode_png
from models.taxonomy import Taxonomy
from service.qa.worklist import CSV_COLUMNS, DraftInfo, difficulty_reason, draft_info, predicted_effort_s, split_batch
from service.store.files import FileStore, Staged, sha256_bytes
from service.store.tables import QA_STATUSES, Correction, Image, Worklist, WorkItem, utcnow
from service.thresholds import QAThresholds

__all__ = ["WorklistError", "WorklistNotFound", "create_worklist", "get_worklist", "list_worklists", "add_item",
           "get_item", "assign", "update_item", "item_correction", "item_corrections", "worklist_csv",
           "delete_worklist", "image_id_from_name"]


class WorklistError(ValueError):
    """The request does not fit the worklist (bad name, duplicate photo, unknown status...)."""


class WorklistNotFound(LookupError):
    """No worklist (or item) by that id or name."""


def image_id_from_name(filename: str) -> str:
    """A photo's id in a batch: its file name without folders and extension ('a/b/1005.jpg' -> '1005'),
    with characters a file name cannot safely hold replaced by '_'."""
    from service.delivery import DeliveryError, sanitize_image_id

    stem = filename.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    try:
        return sanitize_image_id(stem)
    except DeliveryError as exc:
        raise WorklistError(str(exc)) from None


def _check_image_id(image_id: str) -> str:
    # Ids become file names in delivery packages, so the package's own rule applies from the start.
    from service.delivery import DeliveryError, check_image_id

    try:
        return check_image_id(image_id)
    except DeliveryError as exc:
        raise WorklistError(str(exc)) from None


def create_worklist(session: Session, name: str, model_version: str, taxonomy: Taxonomy,
                    annotators: list[str] | None = None, created_by: str | None = None) -> Worklist:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise WorklistError("a worklist needs a name of 1-200 characters")
    if session.scalar(select(Worklist).where(Worklist.name == name)) is not None:
        raise WorklistError(f"a worklist named {name!r} already exists")
    wl = Worklist(name=name, model_version=model_version, taxonomy=taxonomy.tag,
                  annotators=_clean_names(annotators or []), created_by=created_by)
    session.add(wl)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise WorklistError(f"a worklist named {name!r} already exists") from None
    return wl


def _clean_names(names: list[str]) -> list[str]:
    cleaned = [n.strip() for n in names if n and n.strip()]
    if any(len(n) > 200 for n in cleaned):
        raise WorklistError("annotator names are at most 200 characters")
    return list(dict.fromkeys(cleaned))


def get_worklist(session: Session, ref: int | str) -> Worklist:
    """By id (an int or digits) or by name."""
    wl = None
    if isinstance(ref, int) or str(ref).isdigit():
        wl = session.get(Worklist, int(ref))
    if wl is None:
        wl = session.scalar(select(Worklist).where(Worklist.name == str(ref)))
    if wl is None:
        raise WorklistNotFound(f"no worklist {ref!r}")
    return wl


def list_worklists(session: Session) -> list[Worklist]:
    return list(session.scalars(select(Worklist).order_by(Worklist.id)))


def delete_worklist(session: Session, ref: int | str) -> None:
    """Remove the worklist and its items; stored images and masks stay (they are shared by hash)."""
    session.delete(get_worklist(session, ref))
    session.commit()


def get_item(session: Session, wl: Worklist, image_id: str) -> WorkItem:
    item = session.scalar(select(WorkItem).where(WorkItem.worklist_id == wl.id, WorkItem.image_id == image_id))
    if item is None:
        raise WorklistNotFound(f"worklist {wl.name!r} has no image {image_id!r}")
    return item


def add_item(session: Session, files: FileStore, wl: Worklist, image_id: str, image_bytes: bytes,
             photo_shape: tuple[int, int], labels: np.ndarray, confidence: np.ndarray, taxonomy: Taxonomy,
             thresholds: QAThresholds = QAThresholds()) -> WorkItem:
    """Store a drafted photo in the worklist: the image (once, by hash), the draft and its confidence.

    `photo_shape` is the (H, W) of the upright photo the caller decoded from `image_bytes` and drafted,
    so the bytes are not decoded once more here.
    """
    from service.store.corrections import image_suffix

    _check_image_id(image_id)
    if taxonomy.tag != wl.taxonomy:
        raise WorklistError(f"worklist {wl.name!r} is in taxonomy {wl.taxonomy}, the draft in {taxonomy.tag}")
    if session.scalar(select(WorkItem.id).where(WorkItem.worklist_id == wl.id, WorkItem.image_id == image_id)):
        raise WorklistError(f"worklist {wl.name!r} already has an image {image_id!r}")
    shape = tuple(photo_shape[:2])
    if labels.shape != shape or confidence.shape != shape:
        raise WorklistError(f"{image_id}: draft is {labels.shape}, confidence {confidence.shape}, photo {shape}")
    info = draft_info(image_id, labels, confidence, taxonomy, thresholds)
    conf_png = encode_png(np.clip(np.rint(confidence * 255.0), 0, 255).astype(np.uint8))
    sha = sha256_bytes(image_bytes)
    staged: list[Staged] = []
    try:
        image = session.get(Image, sha)
        if image is None:
            st = files.stage("images", image_bytes, image_suffix(image_bytes))
            staged.append(st)
            image = Image(sha256=sha, width=shape[1], height=shape[0], path=st.rel, bytes=len(image_bytes))
            session.add(image)
        draft = files.stage("masks", encode_png(labels.astype(np.uint8)), ".png")
        conf = files.stage("masks", conf_png, ".png")
        staged += [draft, conf]
        item = WorkItem(worklist=wl, image_id=image_id, image=image, draft_mask_path=draft.rel,
                        confidence_path=conf.rel, draft_classes=info.classes(),
                        difficulty=round(info.difficulty, 4),
                        predicted_effort_s=round(predicted_effort_s(info, thresholds), 1),
                        reason=difficulty_reason(info, thresholds), info=_info_dict(info), updated_at=utcnow())
        session.add(item)
        session.commit()
    except IntegrityError:
        files.abandon(session, staged)
        raise WorklistError(f"{image_id}: stored at the same moment by another request; retry") from None
    except BaseException:
        files.abandon(session, staged)
        raise
    for st in staged:
        files.publish(st)
    return item


def _info_dict(info: DraftInfo) -> dict:
    return {"class_areas": dict(info.class_areas), "image_area": info.image_area, "difficulty": info.difficulty,
            "uncertain_fraction": info.uncertain_fraction, "mean_confidence": info.mean_confidence,
            "small_regions": info.small_regions, "boundary_px": info.boundary_px}


def assign(session: Session, wl: Worklist, annotators: list[str] | None = None,
           capacity: dict[str, float] | None = None, thresholds: QAThresholds = QAThresholds()) -> list[WorkItem]:
    """Split every item between the annotators by predicted effort (hardest first in each share)."""
    names = _clean_names(annotators) if annotators else list(wl.annotators)
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


def update_item(session: Session, wl: Worklist, image_id: str, *, qa_status: str | None = None,
                notes: str | None = None, resolved_flags: list[str] | None = None,
                annotator: str | None = None) -> WorkItem:
    """Change QA status, notes, ticked-off flags or the annotator of one item (None: leave as is)."""
    item = get_item(session, wl, image_id)
    if qa_status is not None:
        if qa_status not in QA_STATUSES:
            raise WorklistError(f"qa_status must be one of {list(QA_STATUSES)}, got {qa_status!r}")
        item.qa_status = qa_status
    if notes is not None:
        item.notes = notes
    if resolved_flags is not None:
        item.resolved_flags = list(dict.fromkeys(str(k) for k in resolved_flags))
    if annotator is not None:
        item.annotator = annotator.strip() or None
        item.position = None
    item.updated_at = utcnow()
    session.commit()
    return item


def item_corrections(session: Session, item: WorkItem) -> list[Correction]:
    """Every correction of the item's photo in the worklist's taxonomy, newest first."""
    query = (select(Correction).where(Correction.image_sha256 == item.image_sha256,
                                      Correction.taxonomy == item.worklist.taxonomy)
             .order_by(Correction.updated_at.desc(), Correction.id.desc()))
    return list(session.scalars(query))


def item_correction(session: Session, item: WorkItem, approved_only: bool = False) -> Correction | None:
    """The correction that counts for the item: the newest approved one, else the newest not rejected."""
    rows = item_corrections(session, item)
    approved = [c for c in rows if c.status == "approved"]
    if approved or approved_only:
        return approved[0] if approved else None
    pending = [c for c in rows if c.status == "submitted"]
    return pending[0] if pending else None


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
        w.writerow([i.image_id, i.annotator or "", ";".join(i.draft_classes), f"{i.difficulty:.4f}", notes,
                    i.qa_status, f"{i.predicted_effort_s:.1f}", i.position or "",
                    corr.status if corr else "none"])
    return buf.getvalue()
