"""Worklists under /v1/worklists: create a batch, add photos (drafted by the serving model), split it
between annotators, download the CSV, and keep each photo's QA status and notes up to date.
QA, effort, agreement, delivery and the report of a worklist live in worklist_review.py.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api import API_PREFIX
from service.api.deps import DataAccess, EngineDep, ReadAccess, SettingsDep, StoreDep, WriteAccess, read_form
from service.api.schemas.worklists import (AssignRequest, ImagesAdded, ItemInfo, ItemUpdate, WorklistCreate,
                                           WorklistInfo)
from service.review.worklists import Photo, assign, draft_into, image_id_from_name, worklist_csv
from service.store import worklists as wl_api
from service.store.tables import QA_STATUSES, WorkItem, Worklist

router = APIRouter(prefix=f"{API_PREFIX}/worklists", tags=["worklists"])


def find_worklist(store, ref: str) -> Worklist:
    try:
        return wl_api.get_worklist(store.session, ref)
    except wl_api.WorklistNotFound as exc:
        raise HTTPException(404, str(exc)) from None


def find_item(store, ref: str, image_id: str) -> tuple[Worklist, WorkItem]:
    wl = find_worklist(store, ref)
    try:
        return wl, wl_api.get_item(store.session, wl, image_id)
    except wl_api.WorklistNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("", status_code=201, response_model=WorklistInfo, response_model_exclude_unset=True)
def create(body: WorklistCreate, response: Response, store: StoreDep, engine: EngineDep,
           _auth: WriteAccess) -> WorklistInfo:
    """A new, empty worklist drafted by the model serving now; add photos with POST .../images."""
    predictor = engine.predictor
    try:
        wl = wl_api.create_worklist(store.session, body.name, predictor.version, predictor.taxonomy,
                                    body.annotators, body.created_by)
    except wl_api.WorklistError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 422, str(exc)) from None
    response.headers["Location"] = f"{API_PREFIX}/worklists/{wl.id}"
    return WorklistInfo.of(store.session, wl)


@router.get("", response_model=list[WorklistInfo], response_model_exclude_unset=True)
def list_all(store: StoreDep, _auth: ReadAccess) -> list[WorklistInfo]:
    return [WorklistInfo.of(store.session, wl) for wl in wl_api.list_worklists(store.session)]


@router.get("/{ref}", response_model=WorklistInfo, response_model_exclude_unset=True)
def get_one(ref: str, store: StoreDep, _auth: ReadAccess, items: bool = True) -> WorklistInfo:
    """A worklist by id or name, with its items (each annotator's share, hardest first)."""
    return WorklistInfo.of(store.session, find_worklist(store, ref), items=items)


@router.delete("/{ref}", status_code=204)
def delete(ref: str, store: StoreDep, _auth: WriteAccess) -> Response:
    find_worklist(store, ref)
    wl_api.delete_worklist(store.session, ref)
    return Response(status_code=204)


@router.post("/{ref}/images", status_code=201, response_model=ImagesAdded, openapi_extra={"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
async def add_images(ref: str, request: Request, settings: SettingsDep, store: StoreDep, engine: EngineDep,
                     _auth: WriteAccess) -> ImagesAdded:
    """Draft photos into the worklist (multipart, one or more `images` files; the file name is the id).

    All or nothing: an unreadable photo or a repeated id refuses the whole upload before drafting.
    """
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(415, "send multipart/form-data with one or more file fields 'images'")
    form = await read_form(request, max_files=settings.max_batch_files, max_fields=10)
    uploads = [u for u in form.getlist("images") if isinstance(u, UploadFile)]
    if not uploads:
        raise HTTPException(422, "no photos: send one or more file fields named 'images'")
    photos = [Photo(image_id_from_name(u.filename or f"image-{k}"), u.filename or f"image-{k}",
                    await u.read()) for k, u in enumerate(uploads, 1)]
    wl = find_worklist(store, ref)
    if wl.model_version != engine.predictor.version:
        raise HTTPException(409, f"worklist {wl.name!r} was drafted by {wl.model_version}; the model now serving "
                                 f"is {engine.predictor.version}: start a new worklist")
    try:
        added = await run_in_threadpool(draft_into, store.session, store.files, wl, photos, engine,
                                        settings.qa_thresholds)
    except wl_api.WorklistError as exc:
        raise HTTPException(422, str(exc)) from None
    return ImagesAdded(added=[ItemInfo.of(store.session, i) for i in added], images=len(wl.items))


@router.post("/{ref}/assign", response_model=WorklistInfo, response_model_exclude_unset=True)
def split_between_annotators(ref: str, body: AssignRequest, store: StoreDep, settings: SettingsDep,
                             _auth: WriteAccess) -> WorklistInfo:
    """Split every photo between annotators so predicted effort, not photo count, is balanced."""
    wl = find_worklist(store, ref)
    try:
        assign(store.session, wl, body.annotators, body.capacity, settings.qa_thresholds)
    except wl_api.WorklistError as exc:
        raise HTTPException(422, str(exc)) from None
    return WorklistInfo.of(store.session, wl, items=True)


@router.get("/{ref}/worklist.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def download_csv(ref: str, store: StoreDep, _auth: ReadAccess) -> Response:
    """The spreadsheet: image id, annotator, classes present, difficulty, notes, QA status (and more)."""
    wl = find_worklist(store, ref)
    return Response(worklist_csv(store.session, wl), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="worklist-{wl.id}.csv"'})


@router.get("/{ref}/items", response_model=list[ItemInfo])
def list_items(ref: str, store: StoreDep, _auth: ReadAccess,
               annotator: Annotated[str | None, Query()] = None,
               qa_status: Annotated[str | None, Query()] = None) -> list[ItemInfo]:
    wl = find_worklist(store, ref)
    if qa_status is not None and qa_status not in QA_STATUSES:
        raise HTTPException(422, f"qa_status must be one of {list(QA_STATUSES)}")
    rows = [i for i in wl.items if (annotator is None or i.annotator == annotator)
            and (qa_status is None or i.qa_status == qa_status)]
    rows.sort(key=lambda i: (i.annotator or "", i.position or 0, i.image_id))
    return [ItemInfo.of(store.session, i) for i in rows]


@router.get("/{ref}/items/{image_id}", response_model=ItemInfo)
def get_item(ref: str, image_id: str, store: StoreDep, _auth: ReadAccess) -> ItemInfo:
    return ItemInfo.of(store.session, find_item(store, ref, image_id)[1])


@router.patch("/{ref}/items/{image_id}", response_model=ItemInfo)
def update_item(ref: str, image_id: str, body: ItemUpdate, store: StoreDep, _auth: WriteAccess) -> ItemInfo:
    """Set QA status, notes, the flags ticked off, or the annotator of one photo."""
    wl, _ = find_item(store, ref, image_id)
    try:
        item = wl_api.update_item(store.session, wl, image_id, **body.model_dump(exclude_unset=True))
    except wl_api.WorklistError as exc:
        raise HTTPException(422, str(exc)) from None
    return ItemInfo.of(store.session, item)


@router.get("/{ref}/items/{image_id}/image", response_class=FileResponse)
def item_image(ref: str, image_id: str, store: StoreDep, _auth: DataAccess) -> FileResponse:
    item = find_item(store, ref, image_id)[1]
    return FileResponse(store.files.path(item.image.path))


@router.get("/{ref}/items/{image_id}/draft.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def item_draft(ref: str, image_id: str, store: StoreDep, _auth: ReadAccess) -> FileResponse:
    """The draft label map (pixel = class id of the worklist's taxonomy)."""
    item = find_item(store, ref, image_id)[1]
    return FileResponse(store.files.path(item.draft_mask_path), media_type="image/png")
