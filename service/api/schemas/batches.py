"""/v1/batches: a folder job's request, a batch's state (a view of its batch_predict job) and its results.

States keep the names batch clients have always seen (a succeeded job is "done"); per-image results are
those of the job's results/ files, with a link to each mask.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas.predict import ClassResult
from service.drafting.answer import LEFT_RIGHT_DOC
from service.drafting.batch import PhotoDraft
from service.store.tables import Job


class FolderJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(max_length=4096, description="path relative to the server's batch_root")
    formats: str | list[str] | None = Field(None, description="encodings stored per class (default: none)")
    left_right: bool | None = Field(None, description=LEFT_RIGHT_DOC)


class Failure(BaseModel):
    index: int
    name: str
    reason: str


# A batch is a batch_predict job; its states keep the names batch clients have always seen.
BATCH_STATUS = {"queued": "queued", "running": "running", "succeeded": "done", "failed": "failed",
                "cancelled": "cancelled"}


class JobState(BaseModel):
    id: str = Field(description="the job id (as in /v1/jobs)")
    status: str = Field(description="queued, running, done, cancelled or failed")
    source: str = Field(description="upload or folder")
    folder: str | None = None
    formats: list[str]
    left_right: bool = Field(False, description="masks, classes and COCO use the left/right split class list")
    total: int
    done: int = Field(description="photos processed, successfully or not")
    succeeded: int
    failed: int
    failures: list[Failure]
    created: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, job: Job) -> "JobState":
        params, progress = job.params or {}, job.progress or {}
        return cls(id=str(job.id), status=BATCH_STATUS[job.status], source="folder" if "folder" in params else "upload",
                   folder=params.get("folder"), formats=params.get("formats", []),
                   left_right=bool(params.get("left_right")), total=progress.get("total", 0),
                   done=progress.get("done", 0), succeeded=progress.get("succeeded", 0),
                   failed=progress.get("failed", 0), failures=progress.get("failures", []),
                   created=job.created_at.timestamp(), started=_timestamp(job.started_at),
                   finished=_timestamp(job.finished_at), error=job.error if job.status == "failed" else None)


def _timestamp(at: datetime | None) -> float | None:
    return at.timestamp() if at else None


class BatchImage(BaseModel):
    index: int
    name: str
    width: int
    height: int
    difficulty: float
    model_version: str
    class_names: list[str]
    classes: list[ClassResult]
    mask_url: str

    @classmethod
    def of(cls, draft: PhotoDraft, mask_url: str) -> "BatchImage":
        return cls(index=draft.index, name=draft.name, width=draft.width, height=draft.height,
                   difficulty=draft.difficulty, model_version=draft.model_version, class_names=draft.class_names,
                   classes=draft.classes, mask_url=mask_url)


class CocoDocument(BaseModel):
    """A COCO instance-segmentation file: one RLE annotation per class present in each image."""

    info: dict[str, Any] = Field(description="description and the model version")
    images: list[dict[str, Any]] = Field(description="id (index + 1), file_name, width, height, difficulty")
    annotations: list[dict[str, Any]] = Field(description="id, image_id, category_id, segmentation (RLE), area, "
                                                          "bbox, iscrowd, score")
    categories: list[dict[str, Any]] = Field(description="id (= class id), name, supercategory, color")


class JobResults(BaseModel):
    job: JobState
    images: list[BatchImage]
    coco: CocoDocument | None = None
