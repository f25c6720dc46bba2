"""Corrections: validate and save an annotator's label map (with its image and draft), review, list, export.

A save is one transaction: files are staged under temporary names, the row is committed, then the
files are renamed into place; on any failure the row is rolled back and the staged files removed.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.images import ImageDecodeError, decode_image, encode_png, read_label_map
from models.taxonomy import Taxonomy
from service.store.files import FileStore, sha256_bytes
from service.store.images import stored_image
from service.store.tables import SOURCES, STATUSES, Correction, Image, utcnow

__all__ = ["CorrectionError", "CorrectionNotFound", "save_correction", "get_correction", "find_by_external_id",
           "list_corrections", "count_corrections", "review", "delete_correction", "load_label_map"]


class CorrectionError(ValueError):
    """The correction cannot be stored as sent (bad image, mask size or class ids, unknown source...)."""


class CorrectionNotFound(LookupError):
    """No correction with that id."""


def _check_labels(name: str, labels, shape: tuple[int, int], taxonomy: Taxonomy) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise CorrectionError(f"{name} must be a single-channel (H, W) label map, got shape {list(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise CorrectionError(f"{name} must hold integer class ids, got {arr.dtype}")
    if arr.shape != shape:
        raise CorrectionError(f"{name} is {arr.shape[1]}x{arr.shape[0]} (WxH) but the image is {shape[1]}x{shape[0]} "
                              "as displayed (EXIF orientation applied)")
    bad = np.unique(arr[(arr < 0) | (arr >= taxonomy.num_classes)]) if arr.size else []
    if len(bad):
        raise CorrectionError(f"{name} has class ids {[int(b) for b in bad[:10]]} outside taxonomy {taxonomy.tag} "
                              f"(0..{taxonomy.num_classes - 1})")
    return arr.astype(np.uint8, copy=False)


def save_correction(session: Session, files: FileStore, *, image_bytes: bytes | None = None,
                    image_sha256: str | None = None, label_map: np.ndarray, taxonomy: Taxonomy, source: str,
                    annotator: str | None = None, notes: str | None = None, draft_labels: np.ndarray | None = None,
                    draft_model_version: str | None = None, external_id: str | None = None,
                    status: str = "submitted", max_pixels: int | None = None, reviewer: str | None = None,
                    review_notes: str | None = None) -> Correction:
    """Validate and store one correction; with `external_id`, replace the one from the same source.
    With `reviewer`, it is stored as reviewed (e.g. approved on arrival) in the same transaction.

    The image is given as file bytes (stored once by content hash) or as the sha256 of a stored one.
    Raises CorrectionError (nothing stored) when anything does not fit.
    """
    if source not in SOURCES:
        raise CorrectionError(f"source must be one of {list(SOURCES)}, got {source!r}")
    if status not in STATUSES:
        raise CorrectionError(f"status must be one of {list(STATUSES)}, got {status!r}")
    if (image_bytes is None) == (image_sha256 is None):
        raise CorrectionError("give exactly one of image_bytes or image_sha256")
    if image_bytes is not None:
        try:
            upright = decode_image(image_bytes, origin="image", max_pixels=max_pixels)
        except ImageDecodeError as exc:
            raise CorrectionError(str(exc)) from None
        sha = sha256_bytes(image_bytes)
        shape = upright.shape[:2]
        del upright
    else:
        sha = image_sha256.strip().lower()
        row = session.get(Image, sha)
        if row is None:
            raise CorrectionError(f"no stored image with sha256 {sha}; upload the image itself")
        shape = (row.height, row.width)
    labels = _check_labels("mask", label_map, shape, taxonomy)
    draft = _check_labels("draft mask", draft_labels, shape, taxonomy) if draft_labels is not None else None
    mask_png = encode_png(labels)
    draft_png = encode_png(draft) if draft is not None else None
    changed = float(np.count_nonzero(draft != labels)) / labels.size if draft is not None else None
    classes = [int(c) for c in np.unique(labels)]

    for attempt in range(2):  # a second try only when another writer stored the same image at the same moment
        try:
            with files.transaction(session) as staged:
                if image_bytes is None and session.get(Image, sha) is None:
                    raise CorrectionError(f"no stored image with sha256 {sha}")
                image = stored_image(session, files, staged, sha, image_bytes, shape)
                mask = files.stage("masks", mask_png, ".png")
                staged.append(mask)
                dmask = files.stage("masks", draft_png, ".png") if draft_png is not None else None
                if dmask is not None:
                    staged.append(dmask)
                row = find_by_external_id(session, source, external_id) if external_id else None
                if row is None:
                    row = Correction(source=source, external_id=external_id, image=image, created_at=utcnow())
                    session.add(row)
                elif row.image_sha256 != sha:
                    raise CorrectionError(f"{source} annotation {external_id!r} belongs to image "
                                          f"{row.image_sha256}, not {sha}")
                row.mask_sha256, row.mask_path, row.classes = mask.sha256, mask.rel, classes
                row.taxonomy, row.annotator, row.notes, row.status = taxonomy.tag, annotator, notes, status
                row.updated_at = utcnow()
                # A changed label map needs a fresh review (unless it comes reviewed).
                row.reviewer = row.reviewed_at = row.review_notes = None
                if reviewer is not None:
                    row.reviewer, row.reviewed_at, row.review_notes = reviewer, row.updated_at, review_notes
                if dmask is not None or draft_model_version is not None:
                    row.draft_model_version = draft_model_version
                    row.draft_mask_sha256 = dmask.sha256 if dmask else None
                    row.draft_mask_path = dmask.rel if dmask else None
                    row.draft_changed_fraction = changed
                session.commit()
        except IntegrityError:
            if attempt == 0:
                continue
            raise CorrectionError("the correction conflicts with one stored at the same moment; retry") from None
        return row
    raise AssertionError("unreachable")


def get_correction(session: Session, correction_id: int) -> Correction | None:
    return session.get(Correction, correction_id)


def find_by_external_id(session: Session, source: str, external_id: str) -> Correction | None:
    return session.scalars(select(Correction).where(Correction.source == source,
                                                    Correction.external_id == external_id)).first()


def _filtered(query, status=None, source=None, annotator=None, image=None, since: datetime | None = None,
              taxonomy: str | None = None):
    if status is not None:
        query = query.where(Correction.status == status)
    if source is not None:
        query = query.where(Correction.source == source)
    if annotator is not None:
        query = query.where(Correction.annotator == annotator)
    if image is not None:
        query = query.where(Correction.image_sha256 == image)
    if since is not None:
        query = query.where(Correction.updated_at >= since)
    if taxonomy is not None:
        query = query.where(Correction.taxonomy == taxonomy)
    return query


def list_corrections(session: Session, *, status: str | None = None, source: str | None = None,
                     annotator: str | None = None, image: str | None = None, since: datetime | None = None,
                     taxonomy: str | None = None, offset: int = 0, limit: int = 100) -> list[Correction]:
    """Corrections matching every filter given, oldest first (stable pages: ordered by id)."""
    query = _filtered(select(Correction), status, source, annotator, image, since, taxonomy)
    return list(session.scalars(query.order_by(Correction.id).offset(offset).limit(limit)))


def count_corrections(session: Session, **filters) -> int:
    return session.scalar(_filtered(select(func.count(Correction.id)), **filters)) or 0


def review(session: Session, correction_id: int, status: str, reviewer: str, notes: str | None = None) -> Correction:
    """Approve or reject (or reopen as submitted) a correction; one transaction."""
    if status not in STATUSES:
        raise CorrectionError(f"status must be one of {list(STATUSES)}, got {status!r}")
    if not reviewer or not reviewer.strip():
        raise CorrectionError("a review needs the reviewer's name")
    row = session.get(Correction, correction_id)
    if row is None:
        raise CorrectionNotFound(f"no correction {correction_id}")
    row.status, row.reviewer, row.review_notes = status, reviewer.strip(), notes
    row.reviewed_at = row.updated_at = utcnow()
    session.commit()
    return row


def delete_correction(session: Session, correction_id: int) -> None:
    """Remove the row (its content-addressed files may be shared with other rows and stay)."""
    row = session.get(Correction, correction_id)
    if row is None:
        raise CorrectionNotFound(f"no correction {correction_id}")
    session.delete(row)
    session.commit()


def load_label_map(files: FileStore, correction: Correction, draft: bool = False) -> np.ndarray | None:
    rel = correction.draft_mask_path if draft else correction.mask_path
    return read_label_map(files.path(rel)) if rel else None
