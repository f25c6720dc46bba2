"""Reviewing and delivering a worklist: QA per photo and batch, flag overlays, correction effort,
agreement with its overlay, the HTML report and the delivery package.
QA state changes go through PATCH .../items/{image_id}; retraining is never started from here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import FileResponse, HTMLResponse

from service.api import API_PREFIX
from service.api.deps import DataAccess, ReadAccess, SettingsDep, StoreDep, WriteAccess
from service.api.routes.worklists import find_item, find_worklist
from service.api.schemas.review import (Agreement, AgreementPair, BatchQA, Delivery, DeliveryRequest, EffortSummary,
                                        ItemQA)
from service.api.schemas.worklists import item_url
from service.review.annotator_agreement import disagreement_png, item_agreements, worklist_agreement
from service.review.checklist import batch_checklist
from service.review.delivery import DeliveryError, check_image_id
from service.review.delivery.worklist import deliver_worklist
from service.review.effort_records import effort_records, effort_summary
from service.review.item_qa import flag_overlay, item_qa
from service.review.report.html import CSP
from service.review.report.worklist import worklist_report_html
from service.store.worklists import WorklistNotFound

router = APIRouter(prefix=f"{API_PREFIX}/worklists", tags=["worklists"])
_PNG = {200: {"content": {"image/png": {}}, "description": "PNG image"}}


@router.get("/{ref}/items/{image_id}/qa", response_model=ItemQA)
def qa(ref: str, image_id: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> ItemQA:
    """Every QA check on the photo's current correction (approved first): flags with where and why,
    the checklist (all segments present, clean overlaps, flags resolved) and the correction effort."""
    item = find_item(store, ref, image_id)[1]
    result = item_qa(store.session, store.files, item, settings.qa_thresholds)
    return ItemQA.model_validate(result.to_dict(flag_url=f"{item_url(item)}/qa/flag.png"))


@router.get("/{ref}/items/{image_id}/qa/flag.png", response_class=Response, responses=_PNG)
def qa_flag_png(ref: str, image_id: str, key: Annotated[str, Query(description="the flag's key")],
                store: StoreDep, settings: SettingsDep, _auth: DataAccess) -> Response:
    """A small crop of the photo with the flagged pixels highlighted and the box drawn."""
    item = find_item(store, ref, image_id)[1]
    result = item_qa(store.session, store.files, item, settings.qa_thresholds)
    if result.correction is None:
        raise HTTPException(404, f"{image_id} has no correction yet, so no flags")
    try:
        return Response(flag_overlay(store.files, result, key), media_type="image/png")
    except WorklistNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/{ref}/qa", response_model=BatchQA)
def batch_qa(ref: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess,
             approved_only: bool = False) -> BatchQA:
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
    return BatchQA(worklist=wl.id, checklist=batch_checklist(per_image), images=rows, without_correction=waiting)


@router.get("/{ref}/effort", response_model=EffortSummary)
def worklist_effort(ref: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> EffortSummary:
    """Correction effort of this batch: changed pixels, IoU and boundary F of draft vs final."""
    wl = find_worklist(store, ref)
    records = effort_records(store.session, store.files, worklist=wl, thresholds=settings.qa_thresholds)
    return EffortSummary(**effort_summary(records), records=records)


@router.get("/{ref}/agreement", response_model=Agreement)
def agreement(ref: str, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> Agreement:
    """Agreement where two or more annotators corrected the same photo: per pair and batch means."""
    return Agreement(**worklist_agreement(store.session, store.files, find_worklist(store, ref),
                                         settings.qa_thresholds))


@router.get("/{ref}/items/{image_id}/agreement", response_model=list[AgreementPair])
def item_agreement(ref: str, image_id: str, store: StoreDep, settings: SettingsDep,
                   _auth: ReadAccess) -> list[AgreementPair]:
    """Each pair of annotators who corrected this photo: IoU and boundary F per class, pixel agreement."""
    item = find_item(store, ref, image_id)[1]
    pairs = item_agreements(store.session, store.files, item, settings.qa_thresholds)
    return [AgreementPair(**p) for p in pairs]


@router.get("/{ref}/items/{image_id}/disagreement.png", response_class=Response, responses=_PNG)
def disagreement(ref: str, image_id: str, a: Annotated[str, Query(description="first annotator")],
                 b: Annotated[str, Query(description="second annotator")], store: StoreDep,
                 _auth: DataAccess) -> Response:
    """Where annotators a and b differ on this photo, magenta over the dimmed photo."""
    item = find_item(store, ref, image_id)[1]
    try:
        return Response(disagreement_png(store.session, store.files, item, a, b), media_type="image/png")
    except WorklistNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/{ref}/report.html", response_class=HTMLResponse)
def report_html(ref: str, store: StoreDep, settings: SettingsDep, _auth: DataAccess) -> HTMLResponse:
    """The batch report as one self-contained HTML page (charts and thumbnails inlined; works offline)."""
    wl = find_worklist(store, ref)
    # The page carries its policy in a meta tag too; the header also covers what comes before that tag.
    return HTMLResponse(worklist_report_html(store.session, store.files, wl, settings.qa_thresholds),
                        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})


def _delivery_dir(settings, dest: str) -> Path:
    try:
        check_image_id(dest)   # the same portable-name rule as photo ids: no folders, no dots up
    except DeliveryError:
        raise HTTPException(422, f"dest {dest!r}: use letters, digits, '.', '_' or '-' (one folder name)") from None
    return settings.export_dir / "deliveries" / dest


@router.post("/{ref}/delivery", status_code=201, response_model=Delivery)
def deliver(ref: str, body: DeliveryRequest, store: StoreDep, settings: SettingsDep, _auth: WriteAccess) -> Delivery:
    """Write the delivery package (folder and zip): originals, label and colour PNGs, COCO JSON, metadata.

    Refused (409, nothing written) while a photo has no approved mask, unless include_unapproved."""
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
    return Delivery.of(result, body.dest, f"{API_PREFIX}/worklists/{wl.id}/delivery/{body.dest}.zip")


@router.get("/{ref}/delivery/{dest}.zip", response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
def delivery_zip(ref: str, dest: str, store: StoreDep, settings: SettingsDep, _auth: DataAccess) -> FileResponse:
    find_worklist(store, ref)
    path = Path(f"{_delivery_dir(settings, dest)}.zip")   # with_suffix would eat a dot in the name
    if not path.is_file():
        raise HTTPException(404, f"no delivery {dest!r}; create it with POST .../delivery")
    return FileResponse(path, media_type="application/zip", filename=f"{dest}.zip")
