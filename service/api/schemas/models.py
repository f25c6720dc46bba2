"""/v1/models: the model serving now (ModelInfo), the versions in the store, and activation.

Annotators' tools read the taxonomy (names, ids, colours) and the upload limits from /v1/models/current.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas import Note
from service.store.tables import ModelVersion


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Note | None = None
    force: bool = Field(False, description="activate a version the promotion gate rejected (needs a reason)")


class Activation(BaseModel):
    version: str
    previous: str | None = Field(description="the version served before")
    changed: bool = Field(description="false when the version was serving already")
    warmup_s: float


class ModelVersionInfo(BaseModel):
    version: str
    name: str | None
    parent: str | None
    taxonomy: str = Field(description="taxonomy tag, e.g. fashion-13@1")
    created: str | None
    registered_at: str
    metrics: dict[str, Any]
    status: str = Field(description="available, candidate, rejected or retired")
    notes: str | None
    current: bool = Field(description="the database's current version")
    serving: bool = Field(description="the version this server answers with")

    @classmethod
    def of(cls, m: ModelVersion, current: str | None, serving: str) -> "ModelVersionInfo":
        return cls(version=m.version, name=m.name, parent=m.parent, taxonomy=m.taxonomy, created=m.created,
                   registered_at=m.registered_at.isoformat(), metrics=m.metrics, status=m.status, notes=m.notes,
                   current=m.version == current, serving=m.version == serving)


class ModelVersions(BaseModel):
    current: str | None
    serving: str
    versions: list[ModelVersionInfo] = Field(description="oldest first")


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
