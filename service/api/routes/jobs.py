"""Jobs under /v1/jobs (retrain, evaluate, batch_predict: queued here, run by `tailor worker`) and the
promotion gate's decisions under /v1/promotions.

Queueing and cancelling are token-protected; a retrain joins one already queued instead of adding another.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from service.api import API_PREFIX
from service.api.deps import Offset, ReadAccess, RowId, SettingsDep, StoreDep, WriteAccess
from service.api.schemas.jobs import JobInfo, JobList, JobQueued, JobRequest, PromotionInfo, Promotions
from service.jobs.kinds import validate_params
from service.store import queue

router = APIRouter(prefix=API_PREFIX, tags=["jobs"])


@router.post("/jobs", status_code=201, response_model=JobQueued)
def create_job(body: JobRequest, response: Response, store: StoreDep, settings: SettingsDep,
               _auth: WriteAccess) -> JobQueued:
    """Queue a job. A retrain while another is queued returns that one (200, `"created": false`)."""
    attempts = body.max_attempts or settings.job_max_attempts
    try:
        params = validate_params(body.kind, body.params, settings, store.session)
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
    return JobQueued.of(job, created=created)


@router.get("/jobs", response_model=JobList)
def list_jobs(store: StoreDep, _auth: ReadAccess,
              status: Annotated[str | None, Query(description="queued, running, succeeded, failed, cancelled")] = None,
              kind: str | None = None, offset: Offset = 0,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JobList:
    """Jobs, newest first; `total` counts every match."""
    try:
        rows, total = queue.list_jobs(store.session, status=status, kind=kind, offset=offset, limit=limit)
    except queue.JobError as exc:
        raise HTTPException(422, str(exc)) from None
    return JobList(total=total, offset=offset, jobs=[JobInfo.of(j) for j in rows])


@router.get("/jobs/{job_id}", response_model=JobInfo)
def get_job(job_id: RowId, store: StoreDep, _auth: ReadAccess) -> JobInfo:
    """One job: status, attempts, progress (a retrain: stage, epoch/epochs, train_loss, val_miou), result."""
    try:
        return JobInfo.of(queue.get_job(store.session, job_id))
    except queue.JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/jobs/{job_id}/cancel", response_model=JobInfo)
def cancel_job(job_id: RowId, store: StoreDep, _auth: WriteAccess) -> JobInfo:
    """A queued job is cancelled now; a running one stops at its next progress report."""
    try:
        return JobInfo.of(queue.cancel(store.session, job_id))
    except queue.JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except queue.JobError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/promotions", response_model=Promotions)
def promotions(store: StoreDep, _auth: ReadAccess, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Promotions:
    """Promotion-gate decisions, newest first: candidate and baseline scores, decision, reason."""
    return Promotions(promotions=[PromotionInfo.of(p) for p in queue.list_promotions(store.session, limit)])
