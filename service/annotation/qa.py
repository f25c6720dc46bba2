"""QA of a worklist item's correction: every check the inputs allow, the checklist, the effort figures.

Flags are recomputed from the stored maps (deterministic, so a flag's key is stable) and the keys an
annotator ticked off are kept on the item; an overlay PNG shows exactly what one flag found.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.annotation.maps import DraftPair, draft_pair, photo, taxonomy_for
from service.qa.checks import CHECKS, run_checks
from service.qa.effort import Effort, correction_effort
from service.qa.flags import Flag, flag_overlay_png
from service.qa.settings import QAThresholds
from service.qa.summary import checklist
from service.store.files import FileStore
from service.store.tables import Correction, WorkItem
from service.store.worklists import WorklistNotFound, item_correction

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
    from urllib.parse import quote

    return quote(key, safe="")


def qa_for_pair(pair: DraftPair, item: WorkItem, thresholds: QAThresholds) -> ItemQA:
    tax = taxonomy_for(item.worklist.taxonomy)
    flags = run_checks(pair.final, pair.draft, pair.confidence, thresholds=thresholds, taxonomy=tax)
    cl = checklist(flags, item.resolved_flags or [])
    effort = None
    if pair.draft is not None and pair.draft.shape == pair.final.shape:
        effort = correction_effort(pair.draft, pair.final, tax, image_id=item.image_id,
                                   model_version=pair.model_version, thresholds=thresholds)
    return ItemQA(item, pair.correction, flags, cl, effort, pair)


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
