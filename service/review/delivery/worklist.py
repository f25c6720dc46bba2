"""A worklist's delivery package: each photo's approved mask with its metadata, QA state and effort,
written by service.review.delivery.writer (folder + zip, all or nothing), with the batch report inside it.
An unapproved photo is refused unless asked for, then it goes in flagged with its best mask so far.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from service.review.delivery import DeliveryError, DeliveryItem, PackageResult, write_package
from service.review.effort_records import effort_records
from service.review.report.worklist import write_worklist_report
from service.review.stored_maps import correction_map, item_draft, taxonomy_for
from service.store.files import FileStore
from service.store.tables import Worklist
from service.store.worklists import item_correction
from service.thresholds import QAThresholds


def delivery_items(session: Session, files: FileStore, wl: Worklist,
                   thresholds: QAThresholds = QAThresholds()) -> list[DeliveryItem]:
    """One DeliveryItem per photo: the approved correction, else (flagged if delivered) the newest
    submitted one, else the draft; effort figures where the correction's draft is known."""
    efforts = {r["correction_id"]: r for r in effort_records(session, files, worklist=wl, thresholds=thresholds)}
    items = []
    for item in wl.items:
        corr = item_correction(session, item)
        approved = corr is not None and corr.status == "approved"
        if corr is not None:
            loader, source = (lambda c=corr: correction_map(files, c)), f"correction {corr.id} ({corr.status})"
        else:
            loader, source = (lambda i=item: item_draft(files, i)), "model draft (no correction yet)"
        items.append(DeliveryItem(
            image_id=item.image_id, image_path=files.path(item.image.path), label_map=loader, approved=approved,
            width=item.image.width, height=item.image.height,
            annotator=corr.annotator if corr else item.annotator, reviewer=corr.reviewer if corr else None,
            qa_status=item.qa_status, notes=_notes(item, corr),
            # A correction that brought its own draft names that draft's model; otherwise the worklist's drafted it.
            draft_model_version=(corr.draft_model_version if corr and corr.draft_mask_path else None) or wl.model_version,
            effort=efforts.get(corr.id) if corr else None,
            extra={"correction_id": corr.id if corr else "", "mask_source": source,
                   "difficulty": item.difficulty, "predicted_effort_s": item.predicted_effort_s}))
    return items


def _notes(item, corr) -> str | None:
    parts = [item.notes, corr.notes if corr else None, corr.review_notes if corr else None]
    return " | ".join(p for p in parts if p) or None


def deliver_worklist(session: Session, files: FileStore, wl: Worklist, out_dir: Path, *, left_right: bool = False,
                     include_unapproved: bool = False, approved_only: bool = False, make_zip: bool = True,
                     overwrite: bool = False,
                     thresholds: QAThresholds = QAThresholds(), report: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> PackageResult:
    """Write the package; DeliveryError (nothing written) when a photo lacks an approved mask."""
    items = delivery_items(session, files, wl, thresholds)
    if approved_only:   # a partial delivery of what is finished; the rest follows in a later package
        items = [i for i in items if i.approved]
    if not items:
        raise DeliveryError(f"worklist {wl.name!r} has no {'approved ' if approved_only else ''}photos")

    def add_report(staging: Path) -> None:
        write_worklist_report(session, files, wl, staging / "report", thresholds)

    batch = {"worklist_id": wl.id, "name": wl.name, "model_version": wl.model_version,
             "annotators": wl.annotators, "created_at": wl.created_at.isoformat()}
    return write_package(items, out_dir, taxonomy_for(wl.taxonomy), left_right=left_right,
                         include_unapproved=include_unapproved, make_zip=make_zip, overwrite=overwrite,
                         extras=add_report if report else None, batch=batch, progress=progress)
