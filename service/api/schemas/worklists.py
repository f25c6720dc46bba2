"""/v1/worklists: creating and splitting a batch, updating a photo's QA state, and how both read back.

Links (image, draft, QA, CSV, report) are relative to the API root, so a client can follow them; each
photo shows the correction that counts for it (approved first).
"""
from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service.api import API_PREFIX
from service.api.schemas import Name, Note
from service.review.worklists import shares
from service.store.tables import QA_STATUSES, Correction, WorkItem, Worklist
from service.store.worklists import item_correction

WORKLISTS = f"{API_PREFIX}/worklists"


class WorklistCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field(description="unique name of the batch, e.g. 'shop-2026-11-25'")
    annotators: list[Name] = Field(default_factory=list, max_length=1000, description="who shares the work")
    created_by: Name | None = None


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotators: list[Name] | None = Field(None, max_length=1000, description="default: the worklist's annotators")
    capacity: dict[Name, float] | None = Field(None, max_length=1000,
                                               description="relative speed per annotator (default 1.0)")


class ItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    qa_status: str | None = Field(None, max_length=20, description=f"one of {', '.join(QA_STATUSES)}")
    notes: Note | None = None
    resolved_flags: list[Name] | None = Field(None, max_length=10_000,
                                              description="keys of the QA flags ticked off (replaces the list)")
    annotator: Name | None = Field(None, description="reassign the photo ('' to unassign)")


class CorrectionRef(BaseModel):
    id: int
    status: str
    annotator: str | None
    reviewer: str | None

    @classmethod
    def of(cls, c: Correction | None) -> "CorrectionRef | None":
        return None if c is None else cls(id=c.id, status=c.status, annotator=c.annotator, reviewer=c.reviewer)


def item_url(item: WorkItem) -> str:
    return f"{WORKLISTS}/{item.worklist_id}/items/{quote(item.image_id, safe='')}"


class ItemInfo(BaseModel):
    image_id: str
    image_sha256: str
    width: int
    height: int
    annotator: str | None
    position: int | None = Field(description="1 = first (hardest) of the annotator's share")
    difficulty: float = Field(description="1 - mean confidence of the draft")
    predicted_effort_s: float
    reason: str = Field(description="why the draft is hard, in words")
    draft_classes: list[str]
    qa_status: str = Field(description=", ".join(QA_STATUSES))
    notes: str | None
    resolved_flags: list[str]
    updated_at: str
    correction: CorrectionRef | None = Field(description="the correction that counts: newest approved, else newest")
    image_url: str
    draft_url: str
    qa_url: str

    @classmethod
    def of(cls, session: Session, item: WorkItem) -> "ItemInfo":
        base = item_url(item)
        return cls(image_id=item.image_id, image_sha256=item.image_sha256, width=item.image.width,
                   height=item.image.height, annotator=item.annotator, position=item.position,
                   difficulty=item.difficulty, predicted_effort_s=item.predicted_effort_s, reason=item.reason,
                   draft_classes=item.draft_classes, qa_status=item.qa_status, notes=item.notes,
                   resolved_flags=item.resolved_flags or [], updated_at=item.updated_at.isoformat(),
                   correction=CorrectionRef.of(item_correction(session, item)), image_url=f"{base}/image",
                   draft_url=f"{base}/draft.png", qa_url=f"{base}/qa")


class Share(BaseModel):
    images: int
    predicted_s: float


class WorklistInfo(BaseModel):
    id: int
    name: str
    model_version: str = Field(description="the model that drafted every photo")
    taxonomy: str
    annotators: list[str]
    created_by: str | None
    created_at: str
    images: int
    qa_status: dict[str, int] = Field(description="photos per QA status")
    shares: dict[str, Share] = Field(description="per annotator (unassigned photos under \"null\")")
    csv_url: str
    report_url: str
    items: list[ItemInfo] | None = Field(None, description="each annotator's share, hardest first")

    @classmethod
    def of(cls, session: Session, wl: Worklist, items: bool = False) -> "WorklistInfo":
        status: dict[str, int] = {}
        for i in wl.items:
            status[i.qa_status] = status.get(i.qa_status, 0) + 1
        info = cls(id=wl.id, name=wl.name, model_version=wl.model_version, taxonomy=wl.taxonomy,
                   annotators=wl.annotators, created_by=wl.created_by, created_at=wl.created_at.isoformat(),
                   images=len(wl.items), qa_status=status,
                   shares={"null" if k is None else k: Share(**v) for k, v in shares(wl).items()},
                   csv_url=f"{WORKLISTS}/{wl.id}/worklist.csv", report_url=f"{WORKLISTS}/{wl.id}/report.html")
        if items:  # left unset otherwise, so the answer has no "items" key (routes exclude unset fields)
            info.items = [ItemInfo.of(session, i) for i in wl.items]
        return info


class ImagesAdded(BaseModel):
    added: list[ItemInfo]
    images: int = Field(description="photos in the worklist now")
