"""JSON views of worklists and their items, shared by the REST routes and the CLI's --json output.

URLs are relative to the API root so a client can follow them; everything else is plain data the
store holds, with each item's current correction (approved first) summarised next to it.
"""
from __future__ import annotations

from urllib.parse import quote

from sqlalchemy.orm import Session

from service.review.split import Assignment, share_totals
from service.store.tables import WorkItem, Worklist
from service.store.worklists import item_correction

API = "/v1/worklists"


def item_url(item: WorkItem) -> str:
    return f"{API}/{item.worklist_id}/items/{quote(item.image_id, safe='')}"


def item_dict(session: Session, item: WorkItem) -> dict:
    corr = item_correction(session, item)
    base = item_url(item)
    return {"image_id": item.image_id, "image_sha256": item.image_sha256, "width": item.image.width,
            "height": item.image.height, "annotator": item.annotator, "position": item.position,
            "difficulty": item.difficulty, "predicted_effort_s": item.predicted_effort_s, "reason": item.reason,
            "draft_classes": item.draft_classes, "qa_status": item.qa_status, "notes": item.notes,
            "resolved_flags": item.resolved_flags or [], "updated_at": item.updated_at.isoformat(),
            "correction": None if corr is None else {"id": corr.id, "status": corr.status,
                                                     "annotator": corr.annotator, "reviewer": corr.reviewer},
            "image_url": f"{base}/image", "draft_url": f"{base}/draft.png", "qa_url": f"{base}/qa"}


def totals(wl: Worklist) -> dict:
    """Images and predicted seconds per annotator (unassigned items under null), to show the balance."""
    rows = [Assignment(i.image_id, i.annotator or "", i.position or 0, i.predicted_effort_s, i.difficulty,
                       tuple(i.draft_classes), i.reason) for i in wl.items]
    return {(k or None): {"images": v["images"], "predicted_s": round(v["predicted_s"], 1)}
            for k, v in share_totals(rows).items()}


def worklist_dict(session: Session, wl: Worklist, items: bool = False) -> dict:
    status: dict[str, int] = {}
    for i in wl.items:
        status[i.qa_status] = status.get(i.qa_status, 0) + 1
    out = {"id": wl.id, "name": wl.name, "model_version": wl.model_version, "taxonomy": wl.taxonomy,
           "annotators": wl.annotators, "created_by": wl.created_by, "created_at": wl.created_at.isoformat(),
           "images": len(wl.items), "qa_status": status, "shares": totals(wl),
           "csv_url": f"{API}/{wl.id}/worklist.csv", "report_url": f"{API}/{wl.id}/report.html"}
    if items:
        out["items"] = [item_dict(session, i) for i in wl.items]
    return out
