"""Correction effort over the store: one record per correction that has its draft, and their summaries.

The figures say whether drafts save work: per model version, per class and per day. Each record is
computed once per (final mask, draft) pair and kept in memory, since masks are content-addressed.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.images import read_label_map
from service.review.effort import aggregate, correction_effort
from service.review.measures import summarise
from service.review.stored_maps import taxonomy_for
from service.store.files import FileStore
from service.store.tables import Correction, WorkItem, Worklist
from service.thresholds import QAThresholds

KEYS = ("changed_fraction", "boundary_f", "mean_iou")


@lru_cache(maxsize=4096)
def _effort(final_path: Path, draft_path: Path, tag: str, thresholds: QAThresholds) -> dict | None:
    final, draft = read_label_map(final_path), read_label_map(draft_path)
    if final.shape != draft.shape:
        return None
    return correction_effort(draft, final, taxonomy_for(tag), thresholds=thresholds).to_dict()


def effort_records(session: Session, files: FileStore, *, worklist: Worklist | None = None,
                   taxonomy: str | None = None, since: datetime | None = None,
                   thresholds: QAThresholds = QAThresholds()) -> list[dict]:
    """Effort of every submitted or approved correction whose draft is known (its own or its worklist's)."""
    query = select(Correction).where(Correction.status != "rejected").order_by(Correction.id)
    if taxonomy is not None:
        query = query.where(Correction.taxonomy == taxonomy)
    if since is not None:
        since = since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
        query = query.where(Correction.updated_at >= since)
    items: dict[str, WorkItem] = {}
    item_query = select(WorkItem).order_by(WorkItem.id)
    if worklist is not None:
        item_query = item_query.where(WorkItem.worklist_id == worklist.id)
    for item in session.scalars(item_query):
        items[item.image_sha256] = item   # the newest worklist showing a photo supplies its draft
    records = []
    for c in session.scalars(query):
        item = items.get(c.image_sha256)
        if worklist is not None and item is None:
            continue
        if c.draft_mask_path:
            draft_rel, version = c.draft_mask_path, c.draft_model_version
        elif item is not None and item.worklist.taxonomy == c.taxonomy:
            draft_rel, version = item.draft_mask_path, item.worklist.model_version
        else:
            continue
        rec = _effort(files.path(c.mask_path), files.path(draft_rel), c.taxonomy, thresholds)
        if rec is None:
            continue
        records.append({**rec, "model_version": version or "unknown", "correction_id": c.id,
                        "image_id": item.image_id if item is not None else c.image_sha256[:12],
                        "annotator": c.annotator, "status": c.status,
                        "date": c.updated_at.date().isoformat()})
    return records


def effort_summary(records: list[dict]) -> dict:
    """Overall, per class, per model version (with its classes) and per day and version."""
    days: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        days[(r["date"], r["model_version"])].append(r)
    over_time = [{"date": d, "model_version": v, **{k: s[k] for k in KEYS}, "images": s["images"]}
                 for (d, v), rows in sorted(days.items()) for s in [summarise(rows, KEYS)]]
    overall = summarise(records, KEYS)
    return {"corrections": len(records), "overall": {k: overall[k] for k in (*KEYS, "images")},
            "by_class": overall["classes"], "by_model_version": aggregate(records), "over_time": over_time}
