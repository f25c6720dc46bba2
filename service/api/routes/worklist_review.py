"""Reviewing a worklist: QA checks per photo and per batch, flag overlays, correction effort, agreement
between annotators with its overlay, and store-wide effort under /v1/effort. All read-only: QA
state changes go through PATCH .../items/{image_id}; retraining is never started from here.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from service.annotation.agreement import disagreement_png, item_agreements, worklist_agreement
from service.annotation.effort import effort_records, effort_summary
from service.annotation.qa import flag_overlay, item_qa
from service.annotation.views import item_url
from service.api.deps import ReadAccess, SettingsDep, StoreDep
from service.api.routes import API_PREFIX
from service.api.routes.worklists import find_item, find_worklist
from service.qa.summary import batch_checklist
from service.store.worklists import WorklistNotFound

router = APIRouter(prefix=f"{API_PREFIX}/worklists", tags=["worklists"])
effort_router = APIRouter(prefix=f"{API_PREFIX}/effort", tags=["effort"])
_PNG = {200: {"content": {"image/png": {}}, "description": "PNG image"}}


@router.get("/{ref}/items/{image_id}/qa")
def qa(ref: str, image_id: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> dict:
    """Every QA check on the photo's current correction (approved first): flags with where and why,
    the checklist (all segments present, clean overlaps, flags resolved) and the correction effort."""
    item = find_item(store, ref, image_id)[1]
    result = item_qa(store.session, store.files, item, settings.qa_thresholds)
    return result.to_dict(flag_url=f"{item_url(item)}/qa/flag.png")


@router.get("/{ref}/items/{image_id}/qa/flag.png", response_class=Response, responses=_PNG)
def qa_flag_png(ref: str, image_id: str, key: Annotated[str, Query(description="the flag's key")],
                store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> Response:
    """A small crop of the photo with the flagged pixels highlighted and the box drawn."""
    item = find_item(store, ref, image_id)[1]
    result = item_qa(store.session, store.files, item, settings.qa_thresholds)
    if result.correction is None:
        raise HTTPException(404, f"{image_id} has no correction yet, so no flags")
    try:
        return Response(flag_overlay(store.files, result, key), media_type="image/png")
    except WorklistNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/{ref}/qa")
def batch_qa(ref: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess,
             approved_only: bool = False) -> dict:
    """The batch checklist over photos with a correction, and which photos still lack one."""
    wl = find_worklist(store, ref)
    per_image, rows, waiting = {}, [], []
    for item in wl.items:
        result = item_qa(store.session, store.files, item, settings.qa_thresholds, approved_only)
        if result.correction is None:
            waiting.append(item.image_id)
            continue
        per_image[item.image_id] = result.checklist
        rows.append({"image_id": item.image_id, "annotator": item.annotator, "qa_status": item.qa_status,
                     "correction_id": result.correction.id, "correction_status": result.correction.status,
                     "passed": result.checklist["passed"], "flags_open": result.checklist["flags_open"],
                     "flags_total": result.checklist["flags_total"],
                     "missing_segments": result.checklist["missing_segments"]})
    return {"worklist": wl.id, "checklist": batch_checklist(per_image), "images": rows,
            "without_correction": waiting}


@router.get("/{ref}/effort")
def worklist_effort(ref: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> dict:
    """Correction effort of this batch: changed pixels, IoU and boundary F of draft vs final."""
    wl = find_worklist(store, ref)
    records = effort_records(store.session, store.files, worklist=wl, thresholds=settings.qa_thresholds)
    return {**effort_summary(records), "records": records}


@router.get("/{ref}/agreement")
def agreement(ref: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> dict:
    """Agreement where two or more annotators corrected the same photo: per pair and batch means."""
    return worklist_agreement(store.session, store.files, find_worklist(store, ref), settings.qa_thresholds)


@router.get("/{ref}/items/{image_id}/agreement")
def item_agreement(ref: str, image_id: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> list[dict]:
    item = find_item(store, ref, image_id)[1]
    return item_agreements(store.session, store.files, item, settings.qa_thresholds)


@router.get("/{ref}/items/{image_id}/disagreement.png", response_class=Response, responses=_PNG)
def disagreement(ref: str, image_id: str, a: Annotated[str, Query(description="first annotator")],
                 b: Annotated[str, Query(description="second annotator")], store: StoreDep,
                 _auth: ReadAccess) -> Response:
    """Where annotators a and b differ on this photo, magenta over the dimmed photo."""
    item = find_item(store, ref, image_id)[1]
    try:
        return Response(disagreement_png(store.session, store.files, item, a, b), media_type="image/png")
    except WorklistNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@effort_router.get("")
def effort(store: StoreDep, settings: SettingsDep, _auth: ReadAccess,
           since: Annotated[datetime | None, Query(description="only corrections updated since (ISO 8601)")] = None,
           taxonomy: Annotated[str | None, Query(description="e.g. fashion-13@1")] = None,
           records: bool = False) -> dict:
    """Store-wide correction effort: per model version (and class), per class, and per day."""
    rows = effort_records(store.session, store.files, taxonomy=taxonomy, since=since,
                          thresholds=settings.qa_thresholds)
    out = effort_summary(rows)
    if records:
        out["records"] = rows
    return out
