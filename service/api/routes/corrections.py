"""Corrections under /v1/corrections: upload, review, list, fetch (JSON, mask PNG, image), export.

An upload is multipart (image file or image_sha256, plus a `mask` PNG label map or `rle` JSON of
per-class COCO RLE) or JSON; anything that does not fit the image or the taxonomy is refused and nothing is stored.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from PIL import Image, UnidentifiedImageError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from models.images import reason

from service.api import API_PREFIX
from service.api.deps import (DataAccess, EngineDep, Offset, ReadAccess, RowId, SettingsDep, StoreDep, WriteAccess,
                              read_form)
from service.api.schemas.corrections import (CorrectionFields, CorrectionInfo, CorrectionJSON, CorrectionPage,
                                             Export, ExportRequest, ReviewRequest)
from service.formats import coco_rle
from service.store import corrections as store_api
from service.store.export import export_approved
from service.store.queue import maybe_trigger_retrain
from service.store.tables import Correction

router = APIRouter(prefix=f"{API_PREFIX}/corrections", tags=["corrections"])
_FIELDS = ("image_sha256", "rle", "annotator", "notes", "source", "external_id", "draft_model_version")


def _png_label_map(data: bytes, what: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.format != "PNG" or img.mode not in ("L", "P", "I", "I;16", "1"):
                raise HTTPException(422, f"{what} must be a single-channel PNG label map of class ids "
                                         f"(got {img.format} mode {img.mode})")
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HTTPException(422, f"{what} is not a readable PNG ({reason(exc)})") from None
    return arr.astype(np.int64) if arr.dtype != np.uint8 else arr


def _rle_label_map(rles: Any, taxonomy) -> np.ndarray:
    if isinstance(rles, str):
        try:
            rles = json.loads(rles)
        except json.JSONDecodeError as exc:
            raise HTTPException(422, f"rle is not valid JSON ({exc})") from None
    if not isinstance(rles, dict) or not rles:
        raise HTTPException(422, "rle must be a non-empty object {class name: COCO RLE}")
    out, names = None, set(taxonomy.names)
    for name, rle in rles.items():
        if name not in names:
            raise HTTPException(422, f"rle names class {name!r}, which taxonomy {taxonomy.tag} does not have "
                                     f"(classes: {taxonomy.names})")
        try:
            mask = coco_rle.decode(rle)
        except (ValueError, TypeError) as exc:
            raise HTTPException(422, f"rle of class {name!r}: {exc}") from None
        if out is None:
            out = np.zeros(mask.shape, dtype=np.uint8)
        elif mask.shape != out.shape:
            raise HTTPException(422, f"rle of class {name!r} is {list(mask.shape)}, others are {list(out.shape)}")
        out[mask] = taxonomy.class_id(name)
    return out


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.split(",", 1)[1] if value.startswith("data:") else value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"{what} is not valid base64") from None


async def _read_upload(request: Request, settings, taxonomy) -> dict:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):  # the latter: no files, rle
        form = await read_form(request, max_files=3, max_fields=20, max_part_size=settings.max_mask_upload_bytes)
        fields = {k: form.get(k) for k in _FIELDS if isinstance(form.get(k), str)}
        image, mask, draft = form.get("image"), form.get("mask"), form.get("draft_mask")
        args: dict[str, Any] = {"image_bytes": await image.read() if isinstance(image, UploadFile) else None}
        args["label_map"] = _png_label_map(await mask.read(), "mask") if isinstance(mask, UploadFile) else None
        if isinstance(draft, UploadFile):
            args["draft_labels"] = _png_label_map(await draft.read(), "draft_mask")
        rle = fields.pop("rle", None)
        try:  # the same bounds as the JSON fields
            CorrectionFields.model_validate(fields)
        except ValueError as exc:
            raise HTTPException(422, f"bad form field: {exc}") from None
    elif ctype == "application/json":
        try:
            req = CorrectionJSON.model_validate_json(await request.body())
        except ValueError as exc:
            raise HTTPException(422, f"bad JSON body: {exc}") from None
        fields = req.model_dump(include=set(_FIELDS) - {"rle"}, exclude_none=True)
        args = {"image_bytes": _b64(req.image_base64, "image_base64") if req.image_base64 else None,
                "label_map": _png_label_map(_b64(req.mask_png_base64, "mask_png_base64"), "mask")
                if req.mask_png_base64 else None}
        if req.draft_mask_png_base64:
            args["draft_labels"] = _png_label_map(_b64(req.draft_mask_png_base64, "draft_mask_png_base64"),
                                                  "draft_mask")
        rle = req.rle
    else:
        raise HTTPException(415, f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data "
                                 "(image or image_sha256, mask or rle) or application/json")
    if rle is not None:
        if args["label_map"] is not None:
            raise HTTPException(422, "send the mask once: either a PNG label map or rle, not both")
        args["label_map"] = _rle_label_map(rle, taxonomy)
    if args["label_map"] is None:
        raise HTTPException(422, "no mask: send a PNG label map ('mask') or per-class COCO RLE ('rle')")
    if args["image_bytes"] is None and not fields.get("image_sha256"):
        raise HTTPException(422, "no image: send the image file ('image') or the image_sha256 of a stored one")
    return {**args, **fields}


@router.post("", status_code=201, response_model=CorrectionInfo)
async def upload_correction(request: Request, response: Response, settings: SettingsDep, store: StoreDep,
                            engine: EngineDep, _auth: WriteAccess) -> CorrectionInfo:
    """Store an annotator's label map for a photo (with the draft it corrected, if given)."""
    taxonomy = engine.predictor.taxonomy  # corrections are stored in the serving model's taxonomy
    args = await _read_upload(request, settings, taxonomy)
    args.setdefault("source", "rest")
    try:
        row = await run_in_threadpool(lambda: store_api.save_correction(
            store.session, store.files, taxonomy=taxonomy, max_pixels=settings.max_pixels, **args))
    except store_api.CorrectionError as exc:
        raise HTTPException(422, str(exc)) from None
    response.headers["Location"] = f"{API_PREFIX}/corrections/{row.id}"
    return CorrectionInfo.of(row)


@router.get("", response_model=CorrectionPage)
def list_corrections(store: StoreDep, _auth: ReadAccess,
                     status: Annotated[str | None, Query(description="submitted, approved, rejected")] = None,
                     source: Annotated[str | None, Query()] = None, annotator: Annotated[str | None, Query()] = None,
                     image: Annotated[str | None, Query(description="image sha256")] = None,
                     since: Annotated[datetime | None, Query(description="updated at or after (ISO 8601)")] = None,
                     offset: Offset = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> CorrectionPage:
    """Corrections matching every filter given, by id; `total` counts all matches."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since needs a timezone (e.g. 2026-01-31T12:00:00Z)")
    filters = {"status": status, "source": source, "annotator": annotator, "image": image, "since": since}
    items = store_api.list_corrections(store.session, offset=offset, limit=limit, **filters)
    return CorrectionPage(total=store_api.count_corrections(store.session, **filters), offset=offset, limit=limit,
                          items=[CorrectionInfo.of(c) for c in items])


@router.post("/export", response_model=Export)
def export(body: ExportRequest, settings: SettingsDep, store: StoreDep, engine: EngineDep,
           _auth: WriteAccess) -> Export:
    """Write the approved set as a dataset folder under the export root (readable by `tailor train`)."""
    root = settings.export_dir.resolve()
    dest = (root / body.dest).resolve()
    if not body.dest.strip() or dest == root or not dest.is_relative_to(root):
        raise HTTPException(422, f"dest must be a folder name inside the export root, got {body.dest!r}")
    try:
        result = export_approved(store.session, store.files, dest, engine.predictor.taxonomy,
                                           overwrite=body.overwrite)
    except store_api.CorrectionError as exc:
        raise HTTPException(409, str(exc)) from None
    return Export.of(result, str(dest.relative_to(root)))


@router.get("/export.zip", response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
def export_zip(store: StoreDep, engine: EngineDep, _auth: DataAccess) -> FileResponse:
    """The approved set as a zip of images/, masks/, labels.txt and manifest.json."""
    work = Path(tempfile.mkdtemp(prefix="tailor-export-"))
    try:
        export_approved(store.session, store.files, work / "dataset", engine.predictor.taxonomy)
        archive = shutil.make_archive(str(work / "approved"), "zip", work / "dataset")
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, store_api.CorrectionError):
            raise HTTPException(409, str(exc)) from None
        raise
    return FileResponse(archive, media_type="application/zip", filename="approved.zip",
                        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))


def _get(store, correction_id: int) -> Correction:
    row = store_api.get_correction(store.session, correction_id)
    if row is None:
        raise HTTPException(404, f"no correction {correction_id}")
    return row


@router.get("/{correction_id}", response_model=CorrectionInfo)
def get_correction(correction_id: RowId, store: StoreDep, _auth: ReadAccess) -> CorrectionInfo:
    return CorrectionInfo.of(_get(store, correction_id))


@router.get("/{correction_id}/mask.png", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def get_mask(correction_id: RowId, store: StoreDep, _auth: DataAccess) -> FileResponse:
    """The corrected label map: an 8-bit PNG of class ids at the photo's displayed size."""
    return FileResponse(store.files.path(_get(store, correction_id).mask_path), media_type="image/png")


@router.get("/{correction_id}/draft.png", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def get_draft(correction_id: RowId, store: StoreDep, _auth: ReadAccess) -> FileResponse:
    """The model's draft this correction started from (404 when none was recorded)."""
    row = _get(store, correction_id)
    if not row.draft_mask_path:
        raise HTTPException(404, f"correction {correction_id} has no recorded draft")
    return FileResponse(store.files.path(row.draft_mask_path), media_type="image/png")


@router.get("/{correction_id}/image", response_class=FileResponse)
def get_image(correction_id: RowId, store: StoreDep, _auth: DataAccess) -> FileResponse:
    """The photo as uploaded (EXIF kept)."""
    return FileResponse(store.files.path(_get(store, correction_id).image.path))


@router.post("/{correction_id}/review", response_model=CorrectionInfo)
def review(correction_id: RowId, body: ReviewRequest, store: StoreDep, settings: SettingsDep,
           _auth: WriteAccess) -> CorrectionInfo:
    """Approve or reject a correction (or reopen it as submitted); every `retrain_every` new approvals
    queue a retrain (unless one is already queued or running)."""
    try:
        row = store_api.review(store.session, correction_id, body.status, body.reviewer, body.notes)
    except store_api.CorrectionNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except store_api.CorrectionError as exc:
        raise HTTPException(422, str(exc)) from None
    out = CorrectionInfo.of(row)
    if row.status == "approved":
        maybe_trigger_retrain(store.session, settings.retrain_every, settings.job_max_attempts)
    return out
