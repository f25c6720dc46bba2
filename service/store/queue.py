"""The job queue, in the same database as everything else: enqueue, claim, heartbeat, finish, cancel, recover.

Every state change is one conditional UPDATE checked by its row count (claim: WHERE status='queued'), so
two workers never run one job, on SQLite and PostgreSQL alike; a stale heartbeat marks a dead worker.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.store.tables import JOB_KINDS, JOB_STATUSES, Correction, Job, Promotion, utcnow

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
WORKER_LOST = "worker lost"


class JobError(ValueError):
    """A job request that cannot be queued, or a change its state does not allow."""


class JobNotFound(LookupError):
    pass


def enqueue(session: Session, kind: str, params: dict | None = None, *, max_attempts: int = 2,
            requested_by: str | None = None, reason: str | None = None, progress: dict | None = None) -> Job:
    """Queue a job; `progress` is what it shows before it starts (a batch: its photo count)."""
    if kind not in JOB_KINDS:
        raise JobError(f"kind must be one of {list(JOB_KINDS)}, got {kind!r}")
    if max_attempts < 1:
        raise JobError("max_attempts must be at least 1")
    job = Job(kind=kind, params=dict(params or {}), status="queued", attempts=0, max_attempts=max_attempts,
              cancel_requested=False, progress=dict(progress or {}), requested_by=requested_by, reason=reason, created_at=utcnow())
    session.add(job)
    session.commit()
    return job


def enqueue_retrain(session: Session, params: dict | None = None, *, reason: str | None = None,
                    requested_by: str | None = None, max_attempts: int = 2,
                    coalesce: tuple[str, ...] = ("queued",)) -> tuple[Job, bool]:
    """Queue a retrain unless one in a `coalesce` status exists (it trains on every approved correction
    when it starts, so a second would add nothing). Returns (job, created)."""
    existing = _first_active_retrain(session, coalesce)
    if existing is not None:
        return existing, False
    job = enqueue(session, "retrain", params, max_attempts=max_attempts, requested_by=requested_by, reason=reason)
    # Two requests at the same moment may both get here; the older job wins and the newer one steps aside.
    first = _first_active_retrain(session, coalesce)
    if first is not None and first.id != job.id:
        job.status, job.error, job.finished_at = "cancelled", f"duplicate of job {first.id}", utcnow()
        session.commit()
        return first, False
    return job, True


def _first_active_retrain(session: Session, statuses) -> Job | None:
    session.expire_all()  # fresh rows, not what this session saw before
    return session.scalars(select(Job).where(Job.kind == "retrain", Job.status.in_(statuses))
                           .order_by(Job.id).limit(1)).first()


def approvals_since_last_retrain(session: Session) -> int:
    """Approved corrections reviewed after the newest retrain job was queued (all of them if none was)."""
    last = session.scalar(select(func.max(Job.created_at)).where(Job.kind == "retrain"))
    query = select(func.count(Correction.id)).where(Correction.status == "approved")
    if last is not None:
        query = query.where(Correction.reviewed_at > last)
    return session.scalar(query) or 0


def maybe_trigger_retrain(session: Session, every: int, max_attempts: int = 2) -> Job | None:
    """The every-N trigger: queue a retrain once `every` new approvals have arrived, unless one is active."""
    if every <= 0 or _first_active_retrain(session, ACTIVE) is not None:
        return None
    n = approvals_since_last_retrain(session)
    if n < every:
        return None
    job, created = enqueue_retrain(session, reason=f"{n} corrections approved since the last retrain",
                                   requested_by="trigger", max_attempts=max_attempts, coalesce=ACTIVE)
    return job if created else None


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


def list_jobs(session: Session, *, status: str | None = None, kind: str | None = None, offset: int = 0,
              limit: int = 50) -> tuple[list[Job], int]:
    """Newest first, with the total count of matches."""
    query, count = select(Job), select(func.count(Job.id))
    if status is not None:
        if status not in JOB_STATUSES:
            raise JobError(f"status must be one of {list(JOB_STATUSES)}")
        query, count = query.where(Job.status == status), count.where(Job.status == status)
    if kind is not None:
        query, count = query.where(Job.kind == kind), count.where(Job.kind == kind)
    rows = session.scalars(query.order_by(Job.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), session.scalar(count) or 0


def _set(session: Session, job_id: int, where, **values) -> bool:
    """One conditional UPDATE, committed; True when it changed the row (the caller's view was current)."""
    result = session.execute(update(Job).where(Job.id == job_id, *where).values(**values)
                             .execution_options(synchronize_session=False))
    session.commit()
    return result.rowcount == 1


def claim(session: Session, worker: str, kinds: tuple[str, ...] | None = None) -> Job | None:
    """Take the oldest queued job for `worker`, or None. Safe against any number of concurrent workers."""
    query = select(Job.id).where(Job.status == "queued").order_by(Job.id).limit(8)
    if kinds:
        query = query.where(Job.kind.in_(kinds))
    ids = list(session.scalars(query))
    # End the read transaction first: SQLite (WAL) refuses to upgrade a stale snapshot to a writer.
    session.rollback()
    for job_id in ids:
        now = utcnow()
        if _set(session, job_id, [Job.status == "queued"], status="running", worker=worker, heartbeat_at=now,
                started_at=now, attempts=Job.attempts + 1, error=None):
            return get_job(session, job_id)
    return None


def heartbeat(session: Session, job_id: int, worker: str, progress: dict | None = None) -> str:
    """Refresh the job's heartbeat (and progress). Returns "ok", "cancel" (asked to stop) or "lost"
    (no longer this worker's: recovered as dead, or finished by someone else)."""
    values = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    if not _set(session, job_id, [Job.status == "running", Job.worker == worker], **values):
        return "lost"
    wanted = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    session.rollback()
    return "cancel" if wanted else "ok"


def finish(session: Session, job_id: int, worker: str, status: str, *, result: dict | None = None,
           error: str | None = None, progress: dict | None = None) -> bool:
    """Record the outcome; False if the job was no longer this worker's (then nothing is written)."""
    if status not in FINAL:
        raise JobError(f"a job finishes as one of {list(FINAL)}, not {status!r}")
    values = {"status": status, "result": result, "error": error, "finished_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    return _set(session, job_id, [Job.status == "running", Job.worker == worker], **values)


def release(session: Session, job_id: int, worker: str, note: str) -> bool:
    """Give a running job back to the queue without counting the attempt (the worker is shutting down)."""
    return _set(session, job_id, [Job.status == "running", Job.worker == worker], status="queued",
                worker=None, attempts=Job.attempts - 1, error=note)


def cancel(session: Session, job_id: int) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop (its worker checks at each heartbeat)."""
    job = get_job(session, job_id)
    if job.status == "queued":
        if _set(session, job_id, [Job.status == "queued"], status="cancelled", finished_at=utcnow()):
            return get_job(session, job_id)
        job = get_job(session, job_id)  # claimed meanwhile: fall through to the running case
    if job.status == "running":
        _set(session, job_id, [Job.status == "running"], cancel_requested=True)
        return get_job(session, job_id)
    raise JobError(f"job {job_id} is already {job.status}")


def recover(session: Session, *, stale_after_s: float | None = None, worker: str | None = None,
            now: datetime | None = None) -> list[tuple[int, str]]:
    """Running jobs whose worker is gone (named `worker`, or heartbeat older than `stale_after_s`) go back
    to the queue while attempts remain, else fail with "worker lost". Returns [(job id, new status)]."""
    if stale_after_s is None and worker is None:
        raise JobError("recover needs stale_after_s or worker")
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_after_s) if stale_after_s is not None else None
    running = list(session.scalars(select(Job).where(Job.status == "running")
                                   .execution_options(populate_existing=True)))
    session.rollback()
    changed = []
    for job in running:
        if worker is not None and job.worker != worker:
            continue
        if cutoff is not None and job.heartbeat_at is not None and job.heartbeat_at >= cutoff:
            continue
        # The UPDATE re-checks the same conditions, so a heartbeat that lands meanwhile wins.
        where = [Job.status == "running", Job.worker == job.worker]
        if cutoff is not None:
            where.append(Job.heartbeat_at < cutoff)
        lost = f"{WORKER_LOST}: {job.worker} stopped during attempt {job.attempts} of {job.max_attempts}"
        if job.cancel_requested:
            new, values = "cancelled", {"finished_at": now, "error": lost}
        elif job.attempts < job.max_attempts:
            new, values = "queued", {"worker": None, "error": f"{lost}; requeued"}
        else:
            new, values = "failed", {"finished_at": now, "error": lost}
        if _set(session, job.id, where, status=new, **values):
            changed.append((job.id, new))
    return changed


def record_promotion(session: Session, **fields) -> Promotion:
    row = Promotion(at=utcnow(), **fields)
    session.add(row)
    session.commit()
    return row


def list_promotions(session: Session, limit: int = 50) -> list[Promotion]:
    return list(session.scalars(select(Promotion).order_by(Promotion.id.desc()).limit(limit)))
