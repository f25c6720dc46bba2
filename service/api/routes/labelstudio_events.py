"""Label Studio events under /v1/labelstudio: /webhook (annotations, START_TRAINING), /train, and GET /status.

/webhook answers at once (LS waits 1 s) and stores annotations in the background. A retrain request with too
little data is refused when asked (a redirect naming why, which LS shows as the backend's error); a queued one
answers its job id, which LS records as the backend's train job. /status is a read: what LS did lately.
"""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request

from service.api.deps import ConnectionsDep, LabelStudioAccess, ReadAccess, SettingsDep
from service.api.routes.labelstudio import PREFIX, json_body, refusal
from service.api.schemas.labelstudio import LSEvent, LSStatus
from service.integrations.labelstudio import project_id, queue_retrain
from service.integrations.labelstudio_annotations import annotation_items, store_annotation
from service.jobs.readiness import retrain_readiness

ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
router = APIRouter(prefix=PREFIX, tags=["labelstudio"])


@router.post("/webhook", response_model=LSEvent, response_model_exclude_unset=True,
             responses={307: {"description": "a retrain refused: a redirect naming why"}})
async def webhook(request: Request, background: BackgroundTasks, settings: SettingsDep, conns: ConnectionsDep,
                  _auth: LabelStudioAccess) -> Any:
    """LS events: annotations become corrections (in the background); START_TRAINING queues a retrain."""
    payload = await json_body(request)
    action = payload.get("action")
    conns.activity.webhook(action if isinstance(action, str) else None)
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    pid = project_id(payload.get("project"))
    if action in ANNOTATION_ACTIONS:
        state = request.app.state
        if getattr(state, "store", None) is None or getattr(state, "engine", None) is None or not state.ready:
            raise HTTPException(503, "the store or the model is not ready yet", headers={"Retry-After": "5"})
        schema = project.get("label_config") or conns.schema(pid)
        items = annotation_items(payload)
        for annotation, task in items:
            background.add_task(store_annotation, state, conns, annotation, task, schema, pid, action)
        return LSEvent(status="accepted", action=action, annotations=len(items))
    if action == "START_TRAINING":
        return await _retrain(request, settings, conns, pid, "START_TRAINING webhook")
    return LSEvent(status="ignored", action=action)


async def _retrain(request: Request, settings, conns, pid, how: str) -> Any:
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise HTTPException(503, "the store is not open yet", headers={"Retry-After": "5"})
    ready = await asyncio.to_thread(retrain_readiness, store, settings)
    if not ready.ok:
        event = LSEvent(status="refused", action="START_TRAINING", reason=ready.reason, readiness=ready.as_dict())
        usable = ready.approved - ready.evaluation
        hint = (f"too-few-approved-photos:{usable}-of-{ready.needed}" if usable < ready.needed
                else f"train-val-split-empty:{ready.train}-train-{ready.val}-val")
        conns.activity.train(f"project {pid}: refused: {ready.reason}")
        return refusal([hint], event.model_dump(exclude_none=True))
    record = await asyncio.to_thread(queue_retrain, f"Label Studio project {pid} asked to train ({how})",
                                     settings=settings, details={"source": "labelstudio", "project": pid},
                                     store=store)
    joined = not record.get("created", True)
    conns.activity.train(f"project {pid}: {'joined' if joined else 'queued'} job {record.get('job_id')}")
    return LSEvent(status="joined" if joined else "queued", action="START_TRAINING", job=record.get("job_id"),
                   reason=f"job {record.get('job_id')} was already {record.get('job_status')}" if joined else None,
                   readiness=ready.as_dict(), retrain=record)


@router.post("/train", response_model=LSEvent, response_model_exclude_unset=True,
             responses={307: {"description": "a retrain refused: a redirect naming why"}})
async def train(request: Request, settings: SettingsDep, conns: ConnectionsDep, _auth: LabelStudioAccess) -> Any:
    """The older LS protocol (without the START_TRAINING webhook flag) posts here instead."""
    body = await json_body(request)
    return await _retrain(request, settings, conns, project_id(body.get("project")), "/train")


@router.get("/status", response_model=LSStatus)
async def status(conns: ConnectionsDep, _auth: ReadAccess) -> LSStatus:
    """Webhooks received and refused, tasks that got no draft, and each project's last /setup, since start."""
    return LSStatus(**conns.activity.view())
