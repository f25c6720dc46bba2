"""Request and response models of the HTTP API, which also document it in the OpenAPI schema.

Requests forbid unknown fields, so a misspelt option is a 422 naming it rather than silently ignored.
Encoding payloads are free-form JSON: their shapes are defined by the service.formats encoders.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.drafting.answer import LEFT_RIGHT_DOC
from service.drafting.batch import PhotoDraft
from service.store.tables import Job


class PredictRequest(BaseModel):
    """JSON body of POST /v1/predict: exactly one of image_base64 or image_url."""

    model_config = ConfigDict(extra="forbid")
    image_base64: str | None = Field(None, description="the image file, base64 (a data: URL is accepted)")
    image_url: str | None = Field(None, description="http(s) URL on a host in allowed_url_hosts")
    formats: str | list[str] | None = Field(None, description="png, coco_rle, polygons, ls_brush, cvat")
    confidence_map: bool | None = Field(None, description="add an 8-bit confidence PNG (base64)")
    left_right: bool | None = Field(None, description=LEFT_RIGHT_DOC)

    @model_validator(mode="after")
    def _one_source(self) -> "PredictRequest":
        if (self.image_base64 is None) == (self.image_url is None):
            raise ValueError("send exactly one of image_base64 or image_url")
        return self


class ClassResult(BaseModel):
    id: int
    name: str
    area: int = Field(description="pixels of this class at the image's size")
    score: float = Field(description="mean confidence over the class's pixels")
    encodings: dict[str, Any] = Field(default_factory=dict, description="format name -> payload (not for background)")


class Size(BaseModel):
    height: int
    width: int


class TaxonomyRef(BaseModel):
    name: str
    tag: str


class PredictResponse(BaseModel):
    model_version: str
    taxonomy: TaxonomyRef = Field(description="the class list of this answer: the model's, or its left/right "
                                              "split (name ending -lr) when left_right was asked")
    left_right: bool = Field(False, description="paired classes split into the person's left and right (the "
                                                "person's left is on the image's right)")
    class_names: list[str] = Field(description="class id -> name for every id in this answer: classes, "
                                               "label_map_png and /v1/predict/mask.png pixel values")
    width: int
    height: int
    input_size: Size
    difficulty: float = Field(description="0 (certain) .. 1: mean shortfall of pixel confidence from 1")
    timings_ms: dict[str, float]
    formats: list[str]
    classes: list[ClassResult]
    label_map_png: str | None = Field(None, description="PNG label map of class ids, base64; when png is asked")
    confidence_png: str | None = Field(None, description="8-bit confidence (255 = 1.0) PNG, base64")


class FolderJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(description="path relative to the server's batch_root")
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


class JobResults(BaseModel):
    job: JobState
    images: list[BatchImage]
    coco: dict[str, Any] | None = None


class ModelInfo(BaseModel):
    version: str
    name: str | None = None
    arch: dict[str, Any]
    taxonomy: dict[str, Any]
    metrics: dict[str, Any]
    backend: str
    device: str
    precision: dict[str, Any] = Field(description="numeric precision of each backend's graph: onnx and torch "
                                                  "(fp32, or int8 for a `tailor quantize` copy), and for int8 "
                                                  "how it was made and how it scored against fp32")
    runtime: dict[str, Any] = Field(description="how the backend runs: ONNX Runtime's session options, or "
                                                "torch's device, arithmetic (fp16/bf16 autocast on CUDA, else "
                                                "fp32) and memory layout")
    input: dict[str, Any]
    formats: list[str]
    parent: str | None = None
    created: str | None = None
    status: str | None = Field(None, description="status in the model store")
    activated_at: str | None = None
    limits: dict[str, float | int] = Field(description="what this service accepts, for clients to check before "
                                                       "uploading: max_upload_bytes, max_pixels, min_side, max_side "
                                                       "(larger photos are scaled down for the model), "
                                                       "max_in_flight, max_megapixels_in_flight")
