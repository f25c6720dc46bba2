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


class LSVersions(BaseModel):
    versions: list[str]


class LSTaskPrediction(BaseModel):
    result: list[dict[str, Any]] = Field(description="brushlabels (and polygonlabels) regions")
    score: float | None = Field(None, description="mean confidence: sorted ascending, the hardest task first")
    model_version: str
    error: str | None = Field(None, description="why the task got no regions")


class LSPredictions(BaseModel):
    results: list[LSTaskPrediction] = Field(description="exactly one per task, in order")
    model_version: str


class LSEvent(BaseModel):
    status: str = Field(description="accepted (annotations stored in the background), queued or ignored")
    action: str | None = None
    annotations: int | None = Field(None, description="annotations accepted")
    retrain: dict[str, Any] | None = Field(None, description="the retrain request and the job it joined")
