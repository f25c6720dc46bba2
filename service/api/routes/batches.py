"""Batch pre-annotation jobs under /v1/batches: create, follow progress, fetch results, cancel.

A job is created from a multipart upload of many files (field `images`) or from JSON naming a folder
under the server's batch_root; it runs in the background and its results are files that outlive restarts.
"""
from __future__ import annotations

import json
import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api.deps import EngineDep, JobsDep, ReadAccess, SettingsDep, WriteAccess
from service.api.inputs import read_form
from service.api.routes import API_PREFIX
from service.api.schemas import FolderJobRequest, JobResults, JobState
from service.drafting.answer import LEFT_RIGHT_DOC, coco_document
from service.drafting.left_right import split_taxonomy
from service.formats import UnknownFormatError, parse_formats

router = APIRouter(prefix=f"{API_PREFIX}/batches", tags=["batches"])
JobId = Annotated[str, Path(description="job id (32 hex digits)")]
_ID = re.compile(r"^[0-9a-f]{32}$")
_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "formats": {"type": "string"}, "left_right": {"type": "boolean", "description": LEFT_RIGHT_DOC}}}},
    "application/json": {"schema": {"$ref": "#/components/schemas/FolderJobRequest"}}}}}


def _check_id(job_id: str) -> str:
    # Ids become folder names: anything but our own format is unknown (and never a path).
    if not _ID.match(job_id):
        raise HTTPException(404, f"no batch job {job_id!r}")
    return job_id


def _formats(value) -> list[str]:
    try:
        return parse_formats(value)
    except UnknownFormatError as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("", status_code=202, response_model=JobState, openapi_extra=_BODY_DOC)
async def create_batch(request: Request, response: Response, settings: SettingsDep, jobs: JobsDep,
                       _auth: WriteAccess,
                       formats: Annotated[str | None, Query(description="encodings stored per class")] = None,
                       left_right: Annotated[bool, Query(description=LEFT_RIGHT_DOC)] = False) -> dict:
    """Start a job; answers 202 at once with its state (poll GET /v1/batches/{id})."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    wanted = _formats(formats)
    if ctype == "multipart/form-data":
        form = await read_form(request, max_files=settings.max_batch_files, max_fields=20)
        files = [v for v in form.multi_items() if isinstance(v[1], UploadFile)]
        if not files:
            raise HTTPException(400, "multipart body holds no files; send them in the field 'images'")
        if isinstance(form.get("formats"), str):
            wanted = _formats(form.get("formats"))
        if isinstance(form.get("left_right"), str):
            left_right = form.get("left_right").strip().lower() in ("1", "true", "yes", "on")
        uploads = [(u.filename or f"image{i}", u.file) for i, (_, u) in enumerate(files)]
        job = await run_in_threadpool(jobs.create_from_uploads, uploads, wanted, left_right)
    elif ctype == "application/json":
        try:
            req = FolderJobRequest.model_validate(json.loads(await request.body() or b"null"))
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"request body is not valid JSON ({exc})") from None
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
        if req.formats is not None:
            wanted = _formats(req.formats)
        if req.left_right is not None:
            left_right = req.left_right
        job = await run_in_threadpool(jobs.create_from_folder, settings.batch_root, req.folder, wanted,
                                      settings.max_batch_files, left_right)
    else:
        raise HTTPException(415, f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data "
                                 "(files in 'images') or application/json {\"folder\": ...}")
    response.headers["Location"] = f"/v1/batches/{job['id']}"
    return job


@router.get("/{job_id}", response_model=JobState)
async def get_batch(job_id: JobId, jobs: JobsDep, _auth: ReadAccess) -> dict:
    """Progress: status, done/total, and each failure with its reason."""
    return jobs.get(_check_id(job_id))


@router.get("/{job_id}/results", response_model=JobResults, response_model_exclude_none=True)
async def get_results(job_id: JobId, jobs: JobsDep, engine: EngineDep, _auth: ReadAccess,
                      offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                      coco: Annotated[bool, Query(description="embed a COCO document of the images")] = False) -> dict:
    """Per-image results finished so far (classes, difficulty, mask link), optionally as embedded COCO."""
    state = jobs.get(_check_id(job_id))
    images = await run_in_threadpool(jobs.results, job_id, offset, limit)
    out = {"job": state, "images": [{k: v for k, v in r.items() if k != "coco"} for r in images]}
    if coco:
        out["coco"] = _coco(images, engine, state)
    return out


@router.get("/{job_id}/coco.json")
async def get_coco(job_id: JobId, jobs: JobsDep, engine: EngineDep, _auth: ReadAccess) -> dict:
    """All finished images of the job as one COCO instance-segmentation document (RLE masks)."""
    state = jobs.get(_check_id(job_id))
    return _coco(await run_in_threadpool(jobs.results, job_id), engine, state)


def _coco(images: list[dict], engine, state: dict) -> dict:
    p = engine.predictor
    # Categories must name the ids the job's masks hold: the split class list for a left/right job.
    taxonomy = split_taxonomy(p.taxonomy).taxonomy if state.get("left_right") else p.taxonomy
    return coco_document([r["coco"]["image"] for r in images], [a for r in images for a in r["coco"]["annotations"]],
                         taxonomy, p.version)


@router.get("/{job_id}/masks/{index}.png", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
async def get_mask(job_id: JobId, index: int, jobs: JobsDep, _auth: ReadAccess) -> FileResponse:
    """The PNG label map (class ids) of image `index` of the job."""
    return FileResponse(jobs.mask_path(_check_id(job_id), index), media_type="image/png")


@router.post("/{job_id}/cancel", response_model=JobState)
async def cancel_batch(job_id: JobId, jobs: JobsDep, _auth: WriteAccess) -> dict:
    """Stop the job before its next photo; results so far are kept."""
    return jobs.cancel(_check_id(job_id))


@router.delete("/{job_id}", response_model=JobState)
async def delete_batch(job_id: JobId, jobs: JobsDep, _auth: WriteAccess) -> dict:
    """Same as POST .../cancel (results are kept on disk for inspection)."""
    return jobs.cancel(_check_id(job_id))
