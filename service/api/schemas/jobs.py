"""/v1/jobs and /v1/promotions: queueing a job, a job's state, and the promotion gate's decisions.

Times are ISO 8601 strings in UTC; progress and result are each kind's own (a retrain's progress: stage,
epoch/epochs, train_loss, val_miou; a batch_predict's: done/total and its failures).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas import Note
from service.store.tables import Job, Promotion, columns


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=30, description="retrain, evaluate or batch_predict")
    params: dict[str, Any] = Field(default_factory=dict, description="retrain: epochs, lr, promote, use_base_data; "
                                   "evaluate: version, folder; batch_predict: folder (under batch_root), version, "
                                   "left_right (split paired classes into the person's left and right), formats")
    reason: Note | None = None
    max_attempts: int | None = Field(None, ge=1, le=10, description="default: the server's job_max_attempts")


class JobInfo(BaseModel):
    id: int
    kind: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    params: dict[str, Any]
    attempts: int = Field(description="claims by a worker so far")
    max_attempts: int
    worker: str | None = Field(description="who holds (or last held) it")
    heartbeat_at: str | None
    cancel_requested: bool
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    requested_by: str | None
    reason: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None

    @classmethod
    def of(cls, job: Job, **extra: Any) -> "JobInfo":
        return cls(**columns(job), **extra)


class JobQueued(JobInfo):
    created: bool = Field(description="false when a queued retrain was joined instead")


class JobList(BaseModel):
    total: int = Field(description="every match, not only this page")
    offset: int
    jobs: list[JobInfo] = Field(description="newest first")


class PromotionInfo(BaseModel):
    id: int
    job_id: int | None
    candidate: str
    baseline: str | None = Field(description="the version serving when the candidate was judged")
    decision: str = Field(description="promoted or refused")
    reason: str
    candidate_metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    eval_images: int
    eval_fingerprint: str | None
    at: str

    @classmethod
    def of(cls, p: Promotion) -> "PromotionInfo":
        return cls(**columns(p))


class Promotions(BaseModel):
    promotions: list[PromotionInfo] = Field(description="newest first")
