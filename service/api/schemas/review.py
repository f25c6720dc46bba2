"""Reviewing annotations: QA of a photo, a worklist or a layered annotation, correction effort, agreement
between annotators, and delivery. Per-class figures and checklists are keyed by class or check name, so
they stay mappings; everything around them is declared here.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas import Name
from service.review.delivery import PackageResult
from service.store.tables import QA_STATUSES

Checklist = dict[str, Any]  # all_segments_present, missing_segments, clean_overlaps, ..., by_check, passed


class LayeredAnnotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["coco_rle", "ls_brush"] = Field("coco_rle", description="how each layer is encoded")
    layers: dict[str, Any] = Field(description="{class name: COCO RLE object | LS brush rle list}; may overlap")
    width: int | None = Field(None, ge=1, le=20_000, description="needed for ls_brush (COCO RLE carries its size)")
    height: int | None = Field(None, ge=1, le=20_000)
    worklist: Name | None = Field(None, description="with image_id: compare with that photo's draft too")
    image_id: Name | None = None


class FlagInfo(BaseModel):
    key: str = Field(description="stable for the same masks: tick it off in resolved_flags")
    check: str
    classes: list[str]
    message: str
    bbox: list[int] = Field(description="x0, y0, x1, y1 (exclusive ends)")
    area: int = Field(description="flagged pixels")
    severity: str = Field(description="error, warning or info")
    resolved: bool
    explanation: str = Field(description="what the check looks for, in one sentence")
    overlay_url: str | None = Field(None, description="a small PNG of the flag over the photo")


class QACheck(BaseModel):
    flags: list[FlagInfo]
    checklist: Checklist
    classes: list[str] = Field(description="the layers' classes, in taxonomy order")


class CorrectionSummary(BaseModel):
    id: int
    status: str
    annotator: str | None
    reviewer: str | None


class ItemQA(BaseModel):
    image_id: str
    qa_status: str = Field(description=", ".join(QA_STATUSES))
    notes: str | None
    correction: CorrectionSummary | None = Field(description="the correction checked (none yet: no flags)")
    checklist: Checklist | None
    flags: list[FlagInfo]
    effort: dict[str, Any] | None = Field(description="changed pixels, IoU and boundary F of draft vs final")


class WorklistRef(BaseModel):
    id: int
    name: str
    image_id: str


class CorrectionQA(BaseModel):
    correction_id: int
    status: str
    annotator: str | None
    worklist: WorklistRef | None = Field(description="the worklist holding the photo, if any")
    draft: str = Field(description="own (uploaded with it), worklist (its photo's draft) or none")
    flags: list[FlagInfo]
    checklist: Checklist
    effort: dict[str, Any] | None


class BatchQARow(BaseModel):
    image_id: str
    annotator: str | None
    qa_status: str
    correction_id: int
    correction_status: str
    passed: bool
    flags_open: int
    flags_total: int
    missing_segments: list[str]


class BatchQA(BaseModel):
    worklist: int
    checklist: Checklist
    images: list[BatchQARow]
    without_correction: list[str] = Field(description="photos no one has corrected yet")


class EffortSummary(BaseModel):
    corrections: int
    overall: dict[str, Any] = Field(description="changed_fraction, boundary_f, mean_iou, images")
    by_class: dict[str, Any]
    by_model_version: dict[str, Any]
    over_time: list[dict[str, Any]] = Field(description="per day and model version")
    records: list[dict[str, Any]] | None = Field(None, description="one per correction with a known draft")


class AgreementPair(BaseModel):
    """How two annotators' corrections of one photo agree."""

    pixel_agreement: float = Field(description="share of pixels both gave the same class")
    boundary_f: float
    mean_iou: float | None = Field(description="over garment classes either annotator used")
    tolerance: float = Field(description="px within which two boundaries are the same edge")
    class_iou: dict[str, float]
    class_boundary_f: dict[str, float]
    image_id: str | None
    annotators: list[str] | None
    corrections: list[int] = Field(description="the two corrections compared")


class Agreement(BaseModel):
    pairs: list[AgreementPair] = Field(description="per photo and pair of annotators")
    summary: dict[str, Any] | None = Field(description="batch means (none without a doubly corrected photo)")
    images_with_pairs: int


class DeliveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dest: Name = Field(description="package folder to create under the server's export root, e.g. 'shop-1'")
    include_unapproved: bool = Field(False, description="deliver photos without an approved mask, flagged")
    approved_only: bool = Field(False, description="leave out photos without an approved mask (partial delivery)")
    left_right: bool = Field(False, description="split shoes, socks, legwear, pants into the person's left/right")
    overwrite: bool = False
    report: bool = Field(True, description="put the batch report (report/report.html + charts) in the package")


class Delivery(BaseModel):
    zip_sha256: str | None
    images: int
    flagged: int = Field(description="photos delivered without an approved mask")
    annotations: int
    image_ids: list[str]
    flagged_ids: list[str]
    files: int
    dest: str
    zip_url: str

    @classmethod
    def of(cls, result: PackageResult, dest: str, zip_url: str) -> "Delivery":
        return cls(zip_sha256=result.zip_sha256, images=result.images, flagged=result.flagged,
                   annotations=result.annotations, image_ids=result.image_ids, flagged_ids=result.flagged_ids,
                   files=result.files, dest=dest, zip_url=zip_url)
