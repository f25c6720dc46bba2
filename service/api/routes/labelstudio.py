"""The Label Studio ML backend protocol under /v1/labelstudio: /health, /setup, /predict, /webhook, /train.

/predict answers one prediction per task, in order (a task whose image cannot be fetched: an empty result
and an error); with a smart click or stroke in its context, the regions a refine of the task's draft changed.
/webhook answers at once (LS waits 1 s) and stores annotations in the background.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from service.api import API_PREFIX
from service.api.auth import require_labelstudio
from service.api.deps import ConnectionsDep, EngineDep, SettingsDep
from service.api.schemas.labelstudio import LSEvent, LSHealth, LSPredictions, LSSetup, LSTaskPrediction, LSVersions
from service.drafting.answer import class_summaries
from service.drafting.batcher import BatcherClosed
from service.drafting.refined import kept_draft, refined_prediction
from service.drafting.scores import region_alternatives
from service.integrations.labelstudio import (
    LabelConfig,
    LabelConfigError,
    annotation_label_map,
    class_labels,
    label_classes,
    parse_label_config,
    prediction_regions,
    project_id,
    queue_retrain,
    task_image_ref,
)
from service.integrations.labelstudio_client import Connections, ImageUnavailable
from service.integrations.labelstudio_interactive import (context_edits, interactive_context, refined_regions,
                                                          with_region_meta)
from service.store.corrections import save_correction

log = logging.getLogger("tailor.labelstudio")
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")


router = APIRouter(prefix=f"{API_PREFIX}/labelstudio", tags=["labelstudio"],
                   dependencies=[Depends(require_labelstudio)])


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"request body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "request body must be a JSON object")
    return data


def _config(xml: str | None) -> LabelConfig:
    try:
        return parse_label_config(xml or "")
    except LabelConfigError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/health", response_model=LSHealth)
async def health(request: Request) -> LSHealth:
    engine = getattr(request.app.state, "engine", None)
    if engine is None or not request.app.state.ready:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "5"})
    return LSHealth(status="UP", model_class="tailor", model_version=engine.predictor.version)


@router.post("/setup", response_model=LSSetup)
async def setup(request: Request, engine: EngineDep, settings: SettingsDep, conns: ConnectionsDep) -> LSSetup:
    """LS connects a project: remember its hostname, token and config; answer the model version."""
    body = await _body(request)
    pid = project_id(body.get("project"))
    config = _config(body.get("schema"))
    conns.remember(pid, body.get("hostname"), body.get("access_token"), body.get("schema"))
    taxonomy, mapping = engine.predictor.taxonomy, settings.labelstudio_label_map
    matched = {c.name: class_labels(c, taxonomy, mapping) for c in config.controls}
    covered = {cid for labels in matched.values() for cid in labels}
    missing = [c.name for c in taxonomy.classes if c.id != 0 and c.id not in covered]
    if missing:
        log.info("LS project %s: classes %s have no label in its config and are left out", pid, missing)
    # A new model version is a new string, so LS asks for predictions again.
    return LSSetup(model_version=engine.predictor.version, classes_without_label=missing,
                   labels={name: {taxonomy.names[cid]: label for cid, label in labels.items()}
                           for name, labels in matched.items()})


@router.get("/versions", response_model=LSVersions)
async def versions(engine: EngineDep) -> LSVersions:
    return LSVersions(versions=[engine.predictor.version])


async def _predict_task(task: Any, config: LabelConfig, conn, conns: Connections, engine, settings,
                        gate: asyncio.Semaphore, keep: bool = False) -> LSTaskPrediction:
    version = engine.predictor.version

    def draft(data: bytes, ref: str) -> LSTaskPrediction:
        # In one worker thread; the photo's pixels count against the engine's budget until the regions are made.
        with engine.draft(data, ref, keep=keep) as d:
            scores = {e["id"]: e["score"] for e in class_summaries(d.labels, d.confidence, d.taxonomy)}
            regions = prediction_regions(d.labels, scores, config, d.taxonomy, settings.labelstudio_label_map,
                                         settings.labelstudio_polygon_tolerance)
            with_region_meta(regions, region_alternatives(d.scores, d.labels, settings.region_min_area), config,
                             d.taxonomy, settings.labelstudio_label_map)
        # score = mean confidence (1 - difficulty): sorting tasks by it, ascending, puts the hardest first.
        return LSTaskPrediction(result=regions, score=round(1.0 - float(d.difficulty), 4),
                                model_version=d.model_version)

    async with gate:
        try:
            if not isinstance(task, dict):
                raise ImageUnavailable("the task is not a JSON object")
            ref = task_image_ref(task, config)
            data = await conns.fetch_image(ref, conn)
            return await run_in_threadpool(draft, data, ref)
        except BatcherClosed:
            raise
        except ValueError as exc:  # the image could not be fetched or drafted (PhotoRejected, ImageUnavailable)
            log.warning("LS task %s: no prediction: %s", task.get("id") if isinstance(task, dict) else "?", exc)
            return LSTaskPrediction(result=[], model_version=version, error=str(exc))
        except Exception as exc:  # a bug must not cost the other tasks of the batch their drafts
            log.exception("LS task %s: prediction failed", task.get("id"))
            return LSTaskPrediction(result=[], model_version=version, error=f"internal error ({type(exc).__name__})")


@router.post("/predict", response_model=LSPredictions, response_model_exclude_unset=True)
async def predict(request: Request, engine: EngineDep, settings: SettingsDep, conns: ConnectionsDep) -> LSPredictions:
    """Drafts for a batch of LS tasks: brushlabels (and polygonlabels) regions, a score, the model version."""
    body = await _body(request)
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise HTTPException(400, "body needs 'tasks': a list of Label Studio tasks")
    pid = project_id(body.get("project"))
    config = _config(body.get("label_config") or conns.schema(pid))
    conn = conns.resolve(pid)
    context = interactive_context(body)
    if context is not None:  # an annotator's smart click or stroke: refine that task's draft
        xml = body.get("label_config") or conns.schema(pid) or ""
        results = [await _refine_task(t, context, xml, config, conn, conns, engine, settings) for t in tasks[:1]]
        return LSPredictions(results=results, model_version=engine.predictor.version)
    gate = asyncio.Semaphore(settings.max_in_flight)  # fetches overlap; the model runs one batch at a time
    # One task is an annotator opening it: keep its draft, so a first smart click needs no model call.
    results = await asyncio.gather(*(_predict_task(t, config, conn, conns, engine, settings, gate, len(tasks) == 1)
                                     for t in tasks))
    return LSPredictions(results=list(results), model_version=engine.predictor.version)


async def _refine_task(task: Any, context: list[dict], xml: str, config: LabelConfig, conn, conns: Connections,
                       engine, settings) -> LSTaskPrediction:
    """The regions a refine of the task's kept draft (drafted now when none is) with the context's edits
    changed; a context this backend cannot use gets an empty result and the reason."""
    mapping = settings.labelstudio_label_map

    def refine(data: bytes, ref: str) -> LSTaskPrediction:
        with kept_draft(engine, data, name=ref) as kept:
            refined = refined_prediction(kept, context_edits(context, xml, kept.scores, kept.taxonomy, mapping))
            alternatives = region_alternatives(kept.scores, refined.prediction.labels, settings.region_min_area)
            regions = refined_regions(refined, config, kept.taxonomy, alternatives, mapping,
                                      settings.labelstudio_polygon_tolerance)
        return LSTaskPrediction(result=regions, score=round(1.0 - float(refined.prediction.difficulty), 4),
                                model_version=kept.model_version)

    try:
        if not isinstance(task, dict):
            raise ImageUnavailable("the task is not a JSON object")
        ref = task_image_ref(task, config)
        return await run_in_threadpool(refine, await conns.fetch_image(ref, conn), ref)
    except BatcherClosed:
        raise
    except ValueError as exc:  # the image, or an edit from the context (EditError), could not be used
        log.warning("LS task %s: no refined draft: %s", task.get("id") if isinstance(task, dict) else "?", exc)
        return LSTaskPrediction(result=[], model_version=engine.predictor.version, error=str(exc))
    except Exception as exc:  # a bug: logged in full, answered as an error LS shows, not a failed request
        log.exception("LS task %s: refine failed", task.get("id") if isinstance(task, dict) else "?")
        return LSTaskPrediction(result=[], model_version=engine.predictor.version,
                                error=f"internal error ({type(exc).__name__})")


def _annotation_items(payload: dict) -> list[tuple[dict, dict]]:
    """(annotation, task) pairs from ANNOTATION_CREATED/UPDATED (one) or ANNOTATIONS_CREATED (lists)."""
    anns, tasks = payload.get("annotation"), payload.get("task")
    anns = [anns] if isinstance(anns, dict) else [a for a in anns or [] if isinstance(a, dict)]
    tasks = [tasks] if isinstance(tasks, dict) else [t for t in tasks or [] if isinstance(t, dict)]
    by_id = {t.get("id"): t for t in tasks}
    out = []
    for a in anns:
        task = by_id.get(a.get("task")) or (tasks[0] if len(tasks) == 1 else None)
        if task is not None:
            out.append((a, task))
    return out


def _annotator(annotation: dict) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return None if who is None else f"labelstudio-user-{who}" if isinstance(who, int) else str(who)


async def _draft(annotation: dict, conns: Connections, conn) -> tuple[list | None, str | None]:
    """The prediction the annotator started from (its result and model version), if LS still has it."""
    pred_id = annotation.get("parent_prediction")
    if not pred_id:
        return None, None
    try:
        pred = await conns.get_json(f"/api/predictions/{int(pred_id)}", conn)
    except Exception as exc:  # the correction is stored without a draft rather than not at all
        log.info("LS prediction %s (draft of annotation %s) not fetched: %s", pred_id, annotation.get("id"), exc)
        return None, None
    return pred.get("result") or [], pred.get("model_version")


def _save(app_state, data: bytes, ref: str, annotation: dict, config: LabelConfig, pid, draft_result, draft_version):
    settings, engine, store = app_state.settings, app_state.engine, app_state.store
    if engine is None or store is None:
        raise RuntimeError("the service is shutting down")
    taxonomy = engine.predictor.taxonomy
    # Only the size is needed here (save_correction decodes the photo itself): the header says it.
    h, w = engine.shown_size(data, ref)
    classes = label_classes(config, taxonomy, settings.labelstudio_label_map)
    labels, report = annotation_label_map(annotation.get("result") or [], h, w, classes)
    draft = annotation_label_map(draft_result, h, w, classes)[0] if draft_result is not None else None
    origin = f"Label Studio project {pid}, task {annotation.get('task')}, annotation {annotation.get('id')}"
    with store.session() as session:
        return save_correction(session, store.files, image_bytes=data, label_map=labels, taxonomy=taxonomy,
                               source="labelstudio", annotator=_annotator(annotation), notes=report.notes(origin),
                               draft_labels=draft, draft_model_version=draft_version if draft is not None else None,
                               external_id=f"project/{pid}/annotation/{annotation.get('id')}",
                               max_pixels=settings.max_pixels)


async def _store_annotation(app_state, conns: Connections, annotation: dict, task: dict, schema: str | None,
                            pid: int | None, action: str) -> None:
    """Background: fetch the image (and draft), decode the regions, save the correction; failures are logged."""
    async with conns.store_lock:
        what = f"LS {action} annotation {annotation.get('id')} (task {task.get('id')}, project {pid})"
        try:
            if annotation.get("was_cancelled"):
                log.info("%s: skipped by the annotator; not a correction", what)
                return
            config = parse_label_config(schema or "")
            conn = conns.resolve(pid)
            ref = task_image_ref(task, config)
            data = await conns.fetch_image(ref, conn)
            draft_result, draft_version = await _draft(annotation, conns, conn)
            row = await asyncio.to_thread(_save, app_state, data, ref, annotation, config, pid, draft_result,
                                          draft_version)
            log.info("%s stored as correction %s", what, row.id)
        except ValueError as exc:  # ImageUnavailable, PhotoRejected and CorrectionError are ValueErrors
            log.warning("%s not stored: %s", what, exc)
        except Exception:
            log.exception("%s not stored", what)


@router.post("/webhook", response_model=LSEvent, response_model_exclude_unset=True)
async def webhook(request: Request, background: BackgroundTasks, settings: SettingsDep,
                  conns: ConnectionsDep) -> LSEvent:
    """LS events: annotations become corrections (in the background); START_TRAINING queues a retrain."""
    payload = await _body(request)
    action = payload.get("action")
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    pid = project_id(payload.get("project"))
    if action in ANNOTATION_ACTIONS:
        state = request.app.state
        if getattr(state, "store", None) is None or getattr(state, "engine", None) is None or not state.ready:
            raise HTTPException(503, "the store or the model is not ready yet", headers={"Retry-After": "5"})
        schema = project.get("label_config") or conns.schema(pid)
        items = _annotation_items(payload)
        for annotation, task in items:
            background.add_task(_store_annotation, state, conns, annotation, task, schema, pid, action)
        return LSEvent(status="accepted", action=action, annotations=len(items))
    if action == "START_TRAINING":
        return await _retrain(settings, pid, "START_TRAINING webhook")
    return LSEvent(status="ignored", action=action)


async def _retrain(settings, pid, how: str) -> LSEvent:
    record = await asyncio.to_thread(queue_retrain, f"Label Studio project {pid} asked to train ({how})",
                                     settings=settings, details={"source": "labelstudio", "project": pid})
    return LSEvent(status="queued", retrain=record)


@router.post("/train", response_model=LSEvent, response_model_exclude_unset=True)
async def train(request: Request, settings: SettingsDep) -> LSEvent:
    """The older LS protocol (without the START_TRAINING webhook flag) posts here instead."""
    body = await _body(request)
    return await _retrain(settings, project_id(body.get("project")), "/train")
