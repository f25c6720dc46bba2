"""Reviewing and delivering a worklist: QA per photo and batch, flag overlays, correction effort,
agreement with its overlay, the HTML report, the delivery package, and store-wide /v1/effort.
QA state changes go through PATCH .../items/{image_id}; retraining is never started from here.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import ReadAccess, SettingsDep, StoreDep, WriteAccess
from service.api.routes import API_PREFIX
from service.api.routes.worklists import find_item, find_worklist
from service.review.annotator_agreement import disagreement_png, item_agreements, worklist_agreement
from service.review.checklist import batch_checklist
from service.review.effort_records import effort_records, effort_summary
from service.review.item_qa import flag_overlay, item_qa
from service.review.views import item_url
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


@router.get("/{ref}/report.html", response_class=HTMLResponse)
def report_html(ref: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> HTMLResponse:
    """The batch report as one self-contained HTML page (charts and thumbnails inlined; works offline)."""
    from service.review.report.worklist import worklist_report_html

    wl = find_worklist(store, ref)
    return HTMLResponse(worklist_report_html(store.session, store.files, wl, settings.qa_thresholds))


class DeliveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dest: str = Field(description="package folder to create under the server's export root, e.g. 'shop-1'")
    include_unapproved: bool = Field(False, description="deliver photos without an approved mask, flagged")
    approved_only: bool = Field(False, description="leave out photos without an approved mask (partial delivery)")
    left_right: bool = Field(False, description="split shoes, socks, legwear, pants into the person's left/right")
    overwrite: bool = False
    report: bool = Field(True, description="put the batch report (report/report.html + charts) in the package")


def _delivery_dir(settings, dest: str) -> Path:
    from service.review.delivery import DeliveryError, check_image_id

    try:
        check_image_id(dest)   # the same portable-name rule as photo ids: no folders, no dots up
    except DeliveryError:
        raise HTTPException(422, f"dest {dest!r}: use letters, digits, '.', '_' or '-' (one folder name)") from None
    return settings.export_dir / "deliveries" / dest


@router.post("/{ref}/delivery", status_code=201)
def deliver(ref: str, body: DeliveryRequest, store: StoreDep, settings: SettingsDep, _auth: WriteAccess) -> dict:
    """Write the delivery package (folder and zip): originals, label and colour PNGs, COCO JSON, metadata.

    Refused (409, nothing written) while a photo has no approved mask, unless include_unapproved."""
    from service.review.delivery import DeliveryError
    from service.review.delivery.worklist import deliver_worklist

    wl = find_worklist(store, ref)
    out = _delivery_dir(settings, body.dest)
    try:
        result = deliver_worklist(store.session, store.files, wl, out, left_right=body.left_right,
                                  include_unapproved=body.include_unapproved, approved_only=body.approved_only,
                                  overwrite=body.overwrite,
                                  thresholds=settings.qa_thresholds, report=body.report)
    except DeliveryError as exc:
        conflict = "no approved mask" in str(exc) or "already exists" in str(exc)   # fixable by approving / renaming
        raise HTTPException(409 if conflict else 422, str(exc)) from None
    except FileExistsError as exc:
        raise HTTPException(409, str(exc)) from None
    d = result.to_dict()
    d.pop("path", None)
    d.pop("zip_path", None)
    return {**d, "dest": body.dest, "zip_url": f"{API_PREFIX}/worklists/{wl.id}/delivery/{body.dest}.zip"}


@router.get("/{ref}/delivery/{dest}.zip", response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
def delivery_zip(ref: str, dest: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> FileResponse:
    find_worklist(store, ref)
    path = Path(f"{_delivery_dir(settings, dest)}.zip")   # with_suffix would eat a dot in the name
    if not path.is_file():
        raise HTTPException(404, f"no delivery {dest!r}; create it with POST .../delivery")
    return FileResponse(path, media_type="application/zip", filename=f"{dest}.zip")
