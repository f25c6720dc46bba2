"""The Label Studio ML backend protocol's answers, as LS reads them (its requests are LS's own JSON)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LSHealth(BaseModel):
    status: str = Field(description="UP once the model is loaded")
    model_class: str
    model_version: str


class LSSetup(BaseModel):
    model_version: str
    classes_without_label: list[str] = Field(description="classes the project's config has no label for")
    labels: dict[str, dict[str, str]] = Field(description="per control: class name -> the control's label")
    webhook: dict[str, Any] | None = Field(None, description="LS's webhook to this backend: found, whether its "
                                                             "headers are accepted, whether /setup updated them")


class LSVersions(BaseModel):
    versions: list[str]


class LSTaskPrediction(BaseModel):
    result: list[dict[str, Any]] = Field(description="brushlabels (and polygonlabels) regions")
    score: float | None = Field(None, description="mean confidence: sorted ascending, the hardest task first")
    model_version: str
    error: str | None = Field(None, description="why the task got no regions (its model_version says it too)")


class LSPredictions(BaseModel):
    results: list[LSTaskPrediction | list[LSTaskPrediction]] = Field(
        description="exactly one per task, in order; an empty list: nothing new for that task (LS stores nothing)")
    model_version: str


class LSEvent(BaseModel):
    status: str = Field(description="accepted (annotations stored in the background), queued (a new retrain job), "
                                    "joined (one already queued or running), refused (nothing queued) or ignored")
    action: str | None = None
    annotations: int | None = Field(None, description="annotations accepted")
    job: int | None = Field(None, description="the retrain job's id (LS records it as the backend's train job)")
    reason: str | None = Field(None, description="why nothing was queued, or which job was joined")
    readiness: dict[str, Any] | None = Field(None, description="approved photos: counted, held out, needed")
    retrain: dict[str, Any] | None = Field(None, description="the retrain request and the job it joined")


class LSCount(BaseModel):
    count: int
    last_at: str | None = Field(description="UTC time of the last one")
    last: str | None = Field(description="what the last one was")


class LSStatus(BaseModel):
    webhooks: LSCount = Field(description="webhooks received (last: its action)")
    refused: LSCount = Field(description="requests to the LS routes refused for their credentials (last: the path)")
    tasks_without_draft: LSCount = Field(description="tasks answered without a draft (last: the task and why)")
    train_requests: LSCount = Field(description="Start training requests (last: queued or joined job N, or why "
                                                "it was refused)")
    projects: dict[str, dict[str, Any]] = Field(description="per LS project: the last /setup, its problems, its "
                                                            "webhook")
