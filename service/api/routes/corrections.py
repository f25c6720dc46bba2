"""Corrections under /v1/corrections: upload, review, list, fetch (JSON, mask PNG, image), export.

An upload is multipart (image file or image_sha256, plus a `mask` PNG label map or `rle` JSON of
per-class COCO RLE) or JSON; anything that does not fit the image or the taxonomy is refused and nothing is stored.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api.deps import ReadAccess, SettingsDep, StoreDep, WriteAccess
from service.api.inputs import read_form
from service.api.routes import API_PREFIX
from service.store import corrections as store_api
from service.store.export import export_approved
from service.store.tables import Correction

router = APIRouter(prefix=f"{API_PREFIX}/corrections", tags=["corrections"])
_FIELDS = ("image_sha256", "rle", "annotator", "notes", "source", "external_id", "draft_model_version")


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(description="approved, rejected or submitted (reopen)")
    reviewer: str
    notes: str | None = None


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dest: str = Field(description="folder to create, relative to the server's export root")
    overwrite: bool = False


class CorrectionJSON(BaseModel):
    """JSON upload: the image (base64 or sha256 of a stored one) and the mask (PNG base64 or per-class RLE)."""

    model_config = ConfigDict(extra="forbid")
    image_base64: str | None = None
    image_sha256: str | None = None
    mask_png_base64: str | None = None
    rle: dict[str, dict[str, Any]] | None = Field(None, description="{class name: COCO RLE}")
    draft_mask_png_base64: str | None = None
    draft_model_version: str | None = None
    annotator: str | None = None
    notes: str | None = None
    source: str = "rest"
    external_id: str | None = None


def correction_dict(c: Correction) -> dict:
    base = f"{API_PREFIX}/corrections/{c.id}"
    return {"id": c.id, "image_sha256": c.image_sha256, "width": c.image.width, "height": c.image.height,
            "taxonomy": c.taxonomy, "classes": c.classes, "source": c.source, "external_id": c.external_id,
            "annotator": c.annotator, "status": c.status, "reviewer": c.reviewer,
            "reviewed_at": c.reviewed_at.isoformat() if c.reviewed_at else None, "notes": c.notes,
            "review_notes": c.review_notes, "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat(), "draft_model_version": c.draft_model_version,
            "draft_changed_fraction": c.draft_changed_fraction, "mask_url": f"{base}/mask.png",
            "image_url": f"{base}/image", "draft_mask_url": f"{base}/draft.png" if c.draft_mask_path else None}


def serving_taxonomy(request: Request):
    """Corrections are stored in the taxonomy of the model being served."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "5"})
    return engine.predictor.taxonomy


def _png_label_map(data: bytes, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.format != "PNG" or img.mode not in ("L", "P", "I", "I;16", "1"):
                raise HTTPException(422, f"{what} must be a single-channel PNG label map of class ids "
                                         f"(got {img.format} mode {img.mode})")
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HTTPException(422, f"{what} is not a readable PNG ({exc})") from None
    return arr.astype(np.int64) if arr.dtype != np.uint8 else arr


def _rle_label_map(rles: Any, taxonomy) -> np.ndarray:
    from service.formats.coco_rle import decode

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
            mask = decode(rle)
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


@router.post("", status_code=201)
async def upload_correction(request: Request, response: Response, settings: SettingsDep, store: StoreDep,
                            _auth: WriteAccess) -> dict:
    """Store an annotator's label map for a photo (with the draft it corrected, if given)."""
    taxonomy = serving_taxonomy(request)
    args = await _read_upload(request, settings, taxonomy)
    args.setdefault("source", "rest")
    try:
        row = await run_in_threadpool(lambda: store_api.save_correction(
            store.session, store.files, taxonomy=taxonomy, max_pixels=settings.max_pixels, **args))
    except store_api.CorrectionError as exc:
        raise HTTPException(422, str(exc)) from None
    response.headers["Location"] = f"{API_PREFIX}/corrections/{row.id}"
    return correction_dict(row)


@router.get("")
def list_corrections(store: StoreDep, _auth: ReadAccess,
                     status: Annotated[str | None, Query(description="submitted, approved, rejected")] = None,
                     source: Annotated[str | None, Query()] = None, annotator: Annotated[str | None, Query()] = None,
                     image: Annotated[str | None, Query(description="image sha256")] = None,
                     since: Annotated[datetime | None, Query(description="updated at or after (ISO 8601)")] = None,
                     offset: Annotated[int, Query(ge=0)] = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """Corrections matching every filter given, by id; `total` counts all matches."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since needs a timezone (e.g. 2026-01-31T12:00:00Z)")
    filters = {"status": status, "source": source, "annotator": annotator, "image": image, "since": since}
    items = store_api.list_corrections(store.session, offset=offset, limit=limit, **filters)
    return {"total": store_api.count_corrections(store.session, **filters), "offset": offset, "limit": limit,
            "items": [correction_dict(c) for c in items]}


@router.post("/export")
def export(body: ExportRequest, request: Request, settings: SettingsDep, store: StoreDep, _auth: WriteAccess) -> dict:
    """Write the approved set as a dataset folder under the export root (readable by `tailor train`)."""
    root = settings.export_dir.resolve()
    dest = (root / body.dest).resolve()
    if not body.dest.strip() or dest == root or not dest.is_relative_to(root):
        raise HTTPException(422, f"dest must be a folder name inside the export root, got {body.dest!r}")
    try:
        result = export_approved(store.session, store.files, dest, serving_taxonomy(request),
                                           overwrite=body.overwrite)
    except store_api.CorrectionError as exc:
        raise HTTPException(409, str(exc)) from None
    return {**result.to_dict(), "path": str(dest.relative_to(root))}


@router.get("/export.zip", response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
def export_zip(request: Request, store: StoreDep, _auth: ReadAccess) -> FileResponse:
    """The approved set as a zip of images/, masks/, labels.txt and manifest.json."""
    import shutil
    import tempfile
    from pathlib import Path

    work = Path(tempfile.mkdtemp(prefix="tailor-export-"))
    try:
        export_approved(store.session, store.files, work / "dataset", serving_taxonomy(request))
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


@router.get("/{correction_id}")
def get_correction(correction_id: int, store: StoreDep, _auth: ReadAccess) -> dict:
    return correction_dict(_get(store, correction_id))


@router.get("/{correction_id}/mask.png", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def get_mask(correction_id: int, store: StoreDep, _auth: ReadAccess) -> FileResponse:
    """The corrected label map: an 8-bit PNG of class ids at the photo's displayed size."""
    return FileResponse(store.files.path(_get(store, correction_id).mask_path), media_type="image/png")


@router.get("/{correction_id}/draft.png", response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def get_draft(correction_id: int, store: StoreDep, _auth: ReadAccess) -> FileResponse:
    """The model's draft this correction started from (404 when none was recorded)."""
    row = _get(store, correction_id)
    if not row.draft_mask_path:
        raise HTTPException(404, f"correction {correction_id} has no recorded draft")
    return FileResponse(store.files.path(row.draft_mask_path), media_type="image/png")


@router.get("/{correction_id}/image", response_class=FileResponse)
def get_image(correction_id: int, store: StoreDep, _auth: ReadAccess) -> FileResponse:
    """The photo as uploaded (EXIF kept)."""
    return FileResponse(store.files.path(_get(store, correction_id).image.path))


@router.post("/{correction_id}/review")
def review(correction_id: int, body: ReviewRequest, store: StoreDep, settings: SettingsDep,
           _auth: WriteAccess) -> dict:
    """Approve or reject a correction (or reopen it as submitted); every `retrain_every` new approvals
    queue a retrain (unless one is already queued or running)."""
    from service.store.queue import maybe_trigger_retrain

    try:
        row = store_api.review(store.session, correction_id, body.status, body.reviewer, body.notes)
    except store_api.CorrectionNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except store_api.CorrectionError as exc:
        raise HTTPException(422, str(exc)) from None
    out = correction_dict(row)
    if row.status == "approved":
        maybe_trigger_retrain(store.session, settings.retrain_every, settings.job_max_attempts)
    return out
