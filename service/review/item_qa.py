"""QA of a worklist item's correction: every check the inputs allow, the checklist, the effort figures.

Flags are recomputed from the stored maps (deterministic, so a flag's key is stable) and the keys an
annotator ticked off are kept on the item; an overlay PNG shows exactly what one flag found.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.review.checklist import checklist
from service.review.checks import CHECKS, run_checks
from service.review.effort import Effort, correction_effort
from service.review.flags import Flag, flag_overlay_png
from service.review.stored_maps import DraftPair, draft_pair, photo, taxonomy_for
from service.store.files import FileStore
from service.store.tables import Correction, WorkItem
from service.store.worklists import WorklistNotFound, item_correction
from service.thresholds import QAThresholds

CHECK_DESCRIPTIONS = {c.name: c.description for c in CHECKS.values()}


@dataclass
class ItemQA:
    item: WorkItem
    correction: Correction | None
    flags: list[Flag] = field(default_factory=list)
    checklist: dict | None = None
    effort: Effort | None = None
    pair: DraftPair | None = None

    def to_dict(self, flag_url: str | None = None) -> dict:
        done = set(self.item.resolved_flags or [])
        flags = []
        for f in self.flags:
            d = {**f.to_dict(), "resolved": f.key in done, "explanation": CHECK_DESCRIPTIONS.get(f.check, "")}
            if flag_url:
                d["overlay_url"] = f"{flag_url}?key={_quote(f.key)}"
            flags.append(d)
        c = self.correction
        return {"image_id": self.item.image_id, "qa_status": self.item.qa_status, "notes": self.item.notes,
                "correction": None if c is None else {"id": c.id, "status": c.status, "annotator": c.annotator,
                                                      "reviewer": c.reviewer},
                "checklist": self.checklist, "flags": flags,
                "effort": self.effort.to_dict() if self.effort else None}


def _quote(key: str) -> str:
    return quote(key, safe="")


def _measure(pair: DraftPair, tag: str, resolved: list[str], thresholds: QAThresholds,
             image_id: str | None) -> tuple[list[Flag], dict, Effort | None]:
    tax = taxonomy_for(tag)
    flags = run_checks(pair.final, pair.draft, pair.confidence, thresholds=thresholds, taxonomy=tax)
    effort = None
    if pair.draft is not None and pair.draft.shape == pair.final.shape:
        effort = correction_effort(pair.draft, pair.final, tax, image_id=image_id,
                                   model_version=pair.model_version, thresholds=thresholds)
    return flags, checklist(flags, resolved), effort


def qa_for_pair(pair: DraftPair, item: WorkItem, thresholds: QAThresholds) -> ItemQA:
    flags, cl, effort = _measure(pair, item.worklist.taxonomy, item.resolved_flags or [], thresholds, item.image_id)
    return ItemQA(item, pair.correction, flags, cl, effort, pair)


def correction_qa(session: Session, files: FileStore, correction: Correction,
                  thresholds: QAThresholds = QAThresholds()) -> dict:
    """QA of any stored correction; with its photo in a worklist, that worklist supplies draft,
    confidence and the flags already ticked off."""
    items = [i for i in items_of_image(session, correction.image_sha256)
             if i.worklist.taxonomy == correction.taxonomy]
    item = items[0] if items else None
    pair = draft_pair(files, correction, item)
    flags, cl, effort = _measure(pair, correction.taxonomy, (item.resolved_flags or []) if item else [],
                                 thresholds, item.image_id if item else None)
    done = set(item.resolved_flags or []) if item else set()
    return {"correction_id": correction.id, "status": correction.status, "annotator": correction.annotator,
            "worklist": None if item is None else {"id": item.worklist_id, "name": item.worklist.name,
                                                   "image_id": item.image_id},
            "draft": "none" if pair.draft is None else ("own" if correction.draft_mask_path else "worklist"),
            "flags": [{**f.to_dict(), "resolved": f.key in done,
                       "explanation": CHECK_DESCRIPTIONS.get(f.check, "")} for f in flags],
            "checklist": cl, "effort": effort.to_dict() if effort else None}


def item_qa(session: Session, files: FileStore, item: WorkItem, thresholds: QAThresholds = QAThresholds(),
            approved_only: bool = False) -> ItemQA:
    """QA of the correction that counts for the item; an item with none yet gets an empty result."""
    corr = item_correction(session, item, approved_only=approved_only)
    if corr is None:
        return ItemQA(item, None)
    return qa_for_pair(draft_pair(files, corr, item), item, thresholds)


def flag_overlay(files: FileStore, qa: ItemQA, key: str) -> bytes:
    """A small PNG of one flag over the photo; LookupError when the key is not among the current flags."""
    for f in qa.flags:
        if f.key == key:
            tax = taxonomy_for(qa.item.worklist.taxonomy)
            return flag_overlay_png(f, qa.pair.final, photo(files, qa.item), tax.palette())
    raise WorklistNotFound(f"no current flag {key!r} on {qa.item.image_id} (flags change when the mask changes)")


def items_of_image(session: Session, image_sha256: str) -> list[WorkItem]:
    """Worklist items showing this photo, newest worklist first (a correction's QA context)."""
    return list(session.scalars(select(WorkItem).where(WorkItem.image_sha256 == image_sha256)
                                .order_by(WorkItem.worklist_id.desc())))
