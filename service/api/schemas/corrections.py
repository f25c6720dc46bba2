"""/v1/corrections: an upload as JSON, a review, an export, and a stored correction as clients see it.

A correction links to its label map, its photo and (when recorded) the draft it corrected.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.api import API_PREFIX
from service.api.schemas import Name, Note, Version
from service.store.export import ExportResult
from service.store.tables import Correction


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(max_length=20, description="approved, rejected or submitted (reopen)")
    reviewer: Name
    notes: Note | None = None


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dest: Name = Field(description="folder to create, relative to the server's export root")
    overwrite: bool = False


class CorrectionFields(BaseModel):
    """The text fields of an upload, as JSON fields or multipart text fields."""

    model_config = ConfigDict(extra="forbid")
    image_sha256: str | None = Field(None, max_length=64)
    rle: dict[str, dict[str, Any]] | None = Field(None, description="{class name: COCO RLE}")
    draft_model_version: Version | None = None
    annotator: Name | None = None
    notes: Note | None = None
    source: str = Field("rest", max_length=20)
    external_id: Name | None = None


class CorrectionJSON(CorrectionFields):
    """JSON upload: the image (base64 or sha256 of a stored one) and the mask (PNG base64 or per-class RLE)."""

    image_base64: str | None = None
    mask_png_base64: str | None = None
    draft_mask_png_base64: str | None = None


class CorrectionInfo(BaseModel):
    id: int
    image_sha256: str
    width: int = Field(description="the photo as displayed (EXIF orientation applied)")
    height: int
    taxonomy: str = Field(description="taxonomy tag of the label map, e.g. fashion-13@1")
    classes: list[int] = Field(description="class ids present in the label map")
    source: str = Field(description="labelstudio, cvat, rest or import")
    external_id: str | None
    annotator: str | None
    status: str = Field(description="submitted, approved or rejected")
    reviewer: str | None
    reviewed_at: str | None
    notes: str | None
    review_notes: str | None
    created_at: str
    updated_at: str
    draft_model_version: str | None
    draft_changed_fraction: float | None = Field(description="share of pixels the annotator changed in the draft")
    mask_url: str
    image_url: str
    draft_mask_url: str | None

    @classmethod
    def of(cls, c: Correction) -> "CorrectionInfo":
        base = f"{API_PREFIX}/corrections/{c.id}"
        return cls(id=c.id, image_sha256=c.image_sha256, width=c.image.width, height=c.image.height,
                   taxonomy=c.taxonomy, classes=c.classes, source=c.source, external_id=c.external_id,
                   annotator=c.annotator, status=c.status, reviewer=c.reviewer,
                   reviewed_at=c.reviewed_at.isoformat() if c.reviewed_at else None, notes=c.notes,
                   review_notes=c.review_notes, created_at=c.created_at.isoformat(),
                   updated_at=c.updated_at.isoformat(), draft_model_version=c.draft_model_version,
                   draft_changed_fraction=c.draft_changed_fraction, mask_url=f"{base}/mask.png",
                   image_url=f"{base}/image", draft_mask_url=f"{base}/draft.png" if c.draft_mask_path else None)


class CorrectionPage(BaseModel):
    total: int = Field(description="every match, not only this page")
    offset: int
    limit: int
    items: list[CorrectionInfo]


class Export(BaseModel):
    path: str = Field(description="the dataset folder, relative to the export root")
    images: int
    corrections: list[int] = Field(description="the corrections exported, one per photo")
    skipped_other_taxonomy: int = Field(description="approved, but drawn in another taxonomy (or version of it)")
    superseded: int = Field(description="older approved corrections of a photo with a newer one")

    @classmethod
    def of(cls, result: ExportResult, path: str) -> "Export":
        return cls(path=path, images=result.images, corrections=result.corrections,
                   skipped_other_taxonomy=result.skipped_other_taxonomy, superseded=result.superseded)
