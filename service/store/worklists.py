"""Worklists in the store: annotation batches, their drafted photos (items), QA state and corrections.

Inserting an item is one transaction like a correction: image, draft and confidence PNGs are staged,
the row committed, then the files renamed into place; a failure leaves no row and no stray file.
What goes into an item (its measures, its annotator) is service.review.worklists' business.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.taxonomy import Taxonomy
from service.store.files import FileStore, sha256_bytes
from service.store.images import stored_image
from service.store.tables import QA_STATUSES, Correction, Worklist, WorkItem, utcnow

__all__ = ["WorklistError", "WorklistNotFound", "create_worklist", "get_worklist", "list_worklists", "insert_item",
           "get_item", "update_item", "item_correction", "item_corrections", "delete_worklist", "clean_names"]


class WorklistError(ValueError):
    """The request does not fit the worklist (bad name, duplicate photo, unknown status...)."""


class WorklistNotFound(LookupError):
    """No worklist (or item) by that id or name."""


def create_worklist(session: Session, name: str, model_version: str, taxonomy: Taxonomy,
                    annotators: list[str] | None = None, created_by: str | None = None) -> Worklist:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise WorklistError("a worklist needs a name of 1-200 characters")
    if session.scalar(select(Worklist).where(Worklist.name == name)) is not None:
        raise WorklistError(f"a worklist named {name!r} already exists")
    wl = Worklist(name=name, model_version=model_version, taxonomy=taxonomy.tag,
                  annotators=clean_names(annotators or []), created_by=created_by)
    session.add(wl)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise WorklistError(f"a worklist named {name!r} already exists") from None
    return wl


def clean_names(names: list[str]) -> list[str]:
    cleaned = [n.strip() for n in names if n and n.strip()]
    if any(len(n) > 200 for n in cleaned):
        raise WorklistError("annotator names are at most 200 characters")
    return list(dict.fromkeys(cleaned))


def get_worklist(session: Session, ref: int | str) -> Worklist:
    """By id (an int or digits) or by name."""
    wl = None
    # Only ASCII digits are an id ('²'.isdigit() is true), and only ids a 64-bit column can hold.
    if isinstance(ref, int) or (str(ref).isascii() and str(ref).isdigit()):
        wl = session.get(Worklist, int(ref)) if int(ref) < 2**63 else None
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


def insert_item(session: Session, files: FileStore, wl: Worklist, image_id: str, image_bytes: bytes,
                shape: tuple[int, int], draft_png: bytes, confidence_png: bytes, **fields: Any) -> WorkItem:
    """Store one drafted photo of `wl`: the image (once, by hash), its draft and confidence PNGs, and the
    item row with `fields` (draft_classes, difficulty, predicted_effort_s, reason, info)."""
    if session.scalar(select(WorkItem.id).where(WorkItem.worklist_id == wl.id, WorkItem.image_id == image_id)):
        raise WorklistError(f"worklist {wl.name!r} already has an image {image_id!r}")
    try:
        with files.transaction(session) as staged:
            image = stored_image(session, files, staged, sha256_bytes(image_bytes), image_bytes, shape)
            draft = files.stage("masks", draft_png, ".png")
            conf = files.stage("masks", confidence_png, ".png")
            staged += [draft, conf]
            item = WorkItem(worklist=wl, image_id=image_id, image=image, draft_mask_path=draft.rel,
                            confidence_path=conf.rel, updated_at=utcnow(), **fields)
            session.add(item)
            session.commit()
    except IntegrityError:
        raise WorklistError(f"{image_id}: stored at the same moment by another request; retry") from None
    return item


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
