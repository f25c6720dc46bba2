"""Jobs under /v1/jobs (retrain, evaluate, batch_predict: queued here, run by `tailor worker`) and the
promotion gate's decisions under /v1/promotions.

Queueing and cancelling are token-protected; a retrain joins one already queued instead of adding another.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import ReadAccess, SettingsDep, StoreDep, WriteAccess
from service.api.routes import API_PREFIX
from service.jobs.kinds import validate_params
from service.store import queue

router = APIRouter(prefix=API_PREFIX, tags=["jobs"])


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="retrain, evaluate or batch_predict")
    params: dict[str, Any] = Field(default_factory=dict, description="retrain: epochs, lr, promote, use_base_data; "
                                   "evaluate: version, folder; batch_predict: folder (under batch_root), version, "
                                   "left_right (split paired classes into the person's left and right)")
    reason: str | None = None
    max_attempts: int | None = Field(None, ge=1, le=10, description="default: the server's job_max_attempts")


@router.post("/jobs", status_code=201)
def create_job(body: JobRequest, response: Response, store: StoreDep, settings: SettingsDep,
               _auth: WriteAccess) -> dict:
    """Queue a job. A retrain while another is queued returns that one (200, `"created": false`)."""
    attempts = body.max_attempts or settings.job_max_attempts
    try:
        params = validate_params(body.kind, body.params, settings)
        if body.kind == "retrain":
            job, created = queue.enqueue_retrain(store.session, params, reason=body.reason, requested_by="api",
                                                 max_attempts=attempts)
        else:
            job, created = queue.enqueue(store.session, body.kind, params, max_attempts=attempts,
                                         requested_by="api", reason=body.reason), True
    except queue.JobError as exc:
        raise HTTPException(422, str(exc)) from None
    if not created:
        response.status_code = 200
    return {**queue.job_dict(job), "created": created}


@router.get("/jobs")
def list_jobs(store: StoreDep, _auth: ReadAccess,
              status: Annotated[str | None, Query(description="queued, running, succeeded, failed, cancelled")] = None,
              kind: str | None = None, offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    """Jobs, newest first; `total` counts every match."""
    try:
        rows, total = queue.list_jobs(store.session, status=status, kind=kind, offset=offset, limit=limit)
    except queue.JobError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"total": total, "offset": offset, "jobs": [queue.job_dict(j) for j in rows]}


@router.get("/jobs/{job_id}")
def get_job(job_id: int, store: StoreDep, _auth: ReadAccess) -> dict:
    """One job: status, attempts, progress (a retrain: stage, epoch/epochs, train_loss, val_miou), result."""
    try:
        return queue.job_dict(queue.get_job(store.session, job_id))
    except queue.JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: int, store: StoreDep, _auth: WriteAccess) -> dict:
    """A queued job is cancelled now; a running one stops at its next progress report."""
    try:
        return queue.job_dict(queue.cancel(store.session, job_id))
    except queue.JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except queue.JobError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/promotions")
def promotions(store: StoreDep, _auth: ReadAccess, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    """Promotion-gate decisions, newest first: candidate and baseline scores, decision, reason."""
    return {"promotions": [queue.promotion_dict(p) for p in queue.list_promotions(store.session, limit)]}
