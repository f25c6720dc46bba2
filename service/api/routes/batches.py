"""Batch pre-annotation under /v1/batches: a view of the batch_predict jobs on the job queue.

A batch is created from a multipart upload of many files (field `images`) or from JSON naming a folder
under the server's batch_root; the server's own worker thread (or any `tailor worker`) drafts it, and its
progress, results, COCO document and masks outlive restarts (the database and DATA_DIR/work).
"""
from __future__ import annotations

import json
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api import API_PREFIX
from service.api.deps import MAX_ID, EngineDep, Offset, ReadAccess, SettingsDep, StoreDep, WriteAccess, read_form
from service.api.schemas.batches import BatchImage, CocoDocument, FolderJobRequest, JobResults, JobState
from service.drafting.answer import LEFT_RIGHT_DOC, coco_document
from service.drafting.batch import PhotoDraft, classes_of
from service.drafting.photo_files import list_folder
from service.formats import parse_formats
from service.jobs.batch_predict import load_results, output_dir, stage_upload
from service.jobs.kinds import validate_params
from service.store import queue
from service.store.tables import Job

router = APIRouter(prefix=f"{API_PREFIX}/batches", tags=["batches"])
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="the batch's job id (as in /v1/jobs)")]
ImageIndex = Annotated[int, Path(ge=0, le=MAX_ID, description="the photo's place in the batch, from 0")]
_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "formats": {"type": "string"}, "left_right": {"type": "boolean", "description": LEFT_RIGHT_DOC}}}},
    "application/json": {"schema": {"$ref": "#/components/schemas/FolderJobRequest"}}}}}


def _batch(store, job_id: int) -> Job:
    try:
        job = queue.get_job(store.session, job_id)
    except queue.JobNotFound:
        job = None
    if job is None or job.kind != "batch_predict":
        raise HTTPException(404, f"no batch job {job_id}")
    return job


def _queue(store, settings, params: dict, photos: int) -> Job:
    params = validate_params("batch_predict", params, settings, store.session)
    return queue.enqueue(store.session, "batch_predict", params, max_attempts=settings.job_max_attempts,
                         requested_by="api", progress={"total": photos, "done": 0, "succeeded": 0, "failed": 0,
                                                       "failures": []})


@router.post("", status_code=202, response_model=JobState, openapi_extra=_BODY_DOC)
async def create_batch(request: Request, response: Response, settings: SettingsDep, store: StoreDep,
                       _engine: EngineDep, _auth: WriteAccess,
                       formats: Annotated[str | None, Query(description="encodings stored per class")] = None,
                       left_right: Annotated[bool, Query(description=LEFT_RIGHT_DOC)] = False) -> JobState:
    """Start a batch; answers 202 at once with its state (poll GET /v1/batches/{id})."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    wanted = parse_formats(formats)
    if ctype == "multipart/form-data":
        form = await read_form(request, max_files=settings.max_batch_files, max_fields=20)
        files = [v for v in form.multi_items() if isinstance(v[1], UploadFile)]
        if not files:
            raise HTTPException(400, "multipart body holds no files; send them in the field 'images'")
        if isinstance(form.get("formats"), str):
            wanted = parse_formats(form.get("formats"))
        if isinstance(form.get("left_right"), str):
            left_right = form.get("left_right").strip().lower() in ("1", "true", "yes", "on")
        uploads = [(u.filename or f"image{i}", u.file) for i, (_, u) in enumerate(files)]
        upload, photos = await run_in_threadpool(stage_upload, settings, uploads)
        params = {"upload": upload}
    elif ctype == "application/json":
        try:
            req = FolderJobRequest.model_validate(json.loads(await request.body() or b"null"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # JSON must be UTF-8 (RFC 8259)
            raise HTTPException(400, f"request body is not valid UTF-8 JSON ({exc})") from None
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
        if req.formats is not None:
            wanted = parse_formats(req.formats)
        if req.left_right is not None:
            left_right = req.left_right
        photos = len(await run_in_threadpool(list_folder, settings.batch_root, req.folder, settings.max_batch_files))
        params = {"folder": req.folder}
    else:
        raise HTTPException(415, f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data "
                                 "(files in 'images') or application/json {\"folder\": ...}")
    job = await run_in_threadpool(_queue, store, settings, {**params, "formats": wanted, "left_right": left_right},
                                  photos)
    request.app.state.batch_worker.wake()
    response.headers["Location"] = f"{API_PREFIX}/batches/{job.id}"
    return JobState.of(job)


@router.get("/{job_id}", response_model=JobState)
def get_batch(job_id: JobId, store: StoreDep, _auth: ReadAccess) -> JobState:
    """Progress: status, done/total, and each failure with its reason."""
    return JobState.of(_batch(store, job_id))


@router.get("/{job_id}/results", response_model=JobResults, response_model_exclude_none=True)
def get_results(job_id: JobId, store: StoreDep, settings: SettingsDep, engine: EngineDep, _auth: ReadAccess,
                offset: Offset = 0, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                coco: Annotated[bool, Query(description="embed a COCO document of the images")] = False) -> JobResults:
    """Per-image results finished so far (classes, difficulty, mask link), optionally as embedded COCO."""
    job = _batch(store, job_id)
    drafts = load_results(settings, job.id)[offset: offset + limit]
    images = [BatchImage.of(d, f"{API_PREFIX}/batches/{job.id}/masks/{d.index}.png") for d in drafts]
    return JobResults(job=JobState.of(job), images=images, coco=_coco(drafts, engine, job) if coco else None)


@router.get("/{job_id}/coco.json", response_model=CocoDocument)
def get_coco(job_id: JobId, store: StoreDep, settings: SettingsDep, engine: EngineDep,
             _auth: ReadAccess) -> CocoDocument:
    """All finished images of the batch as one COCO instance-segmentation document (RLE masks)."""
    job = _batch(store, job_id)
    return _coco(load_results(settings, job.id), engine, job)


def _coco(drafts: list[PhotoDraft], engine, job: Job) -> CocoDocument:
    p = engine.predictor
    # Categories must name the ids the batch's masks hold: the split class list for a left/right batch.
    return CocoDocument(**coco_document([d.coco["image"] for d in drafts],
                                        [a for d in drafts for a in d.coco["annotations"]],
                                        classes_of(p.taxonomy, bool(job.params.get("left_right"))), p.version))


@router.get("/{job_id}/masks/{index}.png", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def get_mask(job_id: JobId, index: ImageIndex, store: StoreDep, settings: SettingsDep,
             _auth: ReadAccess) -> FileResponse:
    """The PNG label map (class ids) of image `index` of the batch."""
    job = _batch(store, job_id)
    result = output_dir(settings, job.id) / "results" / f"{index:05d}.json"
    if not result.is_file():
        raise HTTPException(404, f"batch job {job_id} has no mask for image {index}")
    mask = FilePath(json.loads(result.read_text())["mask"])
    return FileResponse(output_dir(settings, job.id) / mask, media_type="image/png")


@router.post("/{job_id}/cancel", response_model=JobState)
def cancel_batch(job_id: JobId, store: StoreDep, _auth: WriteAccess) -> JobState:
    """Stop the batch before its next photo; results so far are kept. A finished batch stays as it is."""
    job = _batch(store, job_id)
    try:
        job = queue.cancel(store.session, job.id)
    except queue.JobError:  # already finished: nothing to stop
        pass
    return JobState.of(job)


@router.delete("/{job_id}", response_model=JobState)
def delete_batch(job_id: JobId, store: StoreDep, _auth: WriteAccess) -> JobState:
    """Same as POST .../cancel (results are kept on disk for inspection)."""
    return cancel_batch(job_id, store, _auth)
