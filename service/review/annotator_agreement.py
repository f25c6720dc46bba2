"""Agreement between annotators who corrected the same photo of a worklist, and its batch figures.

For each photo, each annotator's newest not-rejected correction counts; every pair of annotators is
compared (per-class IoU, boundary F) and a disagreement overlay shows where they differ.
"""
from __future__ import annotations

from itertools import combinations

from sqlalchemy.orm import Session

from models.images import encode_png
from service.review.agreement import agreement, aggregate_agreement, disagreement_overlay
from service.review.stored_maps import correction_map, photo, taxonomy_for
from service.store.files import FileStore
from service.store.tables import Correction, WorkItem, Worklist
from service.store.worklists import WorklistNotFound, item_corrections
from service.thresholds import QAThresholds


def annotator_corrections(session: Session, item: WorkItem) -> dict[str, Correction]:
    """{annotator: newest not-rejected correction}; corrections without an annotator name are left out."""
    out: dict[str, Correction] = {}
    for c in item_corrections(session, item):   # newest first
        if c.status != "rejected" and c.annotator and c.annotator not in out:
            out[c.annotator] = c
    return out


def item_agreements(session: Session, files: FileStore, item: WorkItem,
                    thresholds: QAThresholds = QAThresholds()) -> list[dict]:
    tax = taxonomy_for(item.worklist.taxonomy)
    by_who = annotator_corrections(session, item)
    results = []
    for a, b in combinations(sorted(by_who), 2):
        ca, cb = by_who[a], by_who[b]
        ma, mb = correction_map(files, ca), correction_map(files, cb)
        r = agreement(ma, mb, tax, image_id=item.image_id, annotators=(a, b), thresholds=thresholds).to_dict()
        results.append({**r, "corrections": [ca.id, cb.id]})
    return results


def worklist_agreement(session: Session, files: FileStore, wl: Worklist,
                       thresholds: QAThresholds = QAThresholds()) -> dict:
    """Batch figures and every pair; images corrected by one annotator only are not part of it."""
    pairs = [r for item in wl.items for r in item_agreements(session, files, item, thresholds)]
    return {"pairs": pairs, "summary": aggregate_agreement(pairs) if pairs else None,
            "images_with_pairs": len({p["image_id"] for p in pairs})}


def disagreement_png(session: Session, files: FileStore, item: WorkItem, a: str, b: str) -> bytes:
    """Where annotators a and b differ on this photo, in magenta over the dimmed photo."""
    by_who = annotator_corrections(session, item)
    missing = [n for n in (a, b) if n not in by_who]
    if missing:
        raise WorklistNotFound(f"{item.image_id}: no correction by {', '.join(missing)} "
                               f"(annotators with one: {sorted(by_who) or 'none'})")
    ma, mb = correction_map(files, by_who[a]), correction_map(files, by_who[b])
    return encode_png(disagreement_overlay(ma, mb, photo(files, item)))
