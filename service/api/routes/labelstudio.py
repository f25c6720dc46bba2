"""The Label Studio ML backend protocol under /v1/labelstudio: /health, /setup, /predict (webhook and train:
labelstudio_events.py).

/setup checks that Tailor can fetch the project's photos and use its labels; a problem answers with a redirect
to a URL that names the fix, since LS shows its users only the URL of a failed call, never the body.
/predict answers one prediction per task, in order. A task whose image cannot be fetched or decoded is never
answered with an empty prediction under the live model version (LS would never ask for it again): it gets an
empty one under a version that says why, and LS asks again on the next "Retrieve predictions".
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.api import API_PREFIX
from service.api.auth import labelstudio_accepts, labelstudio_needs_credentials
from service.api.deps import ConnectionsDep, EngineDep, LabelStudioAccess, SettingsDep
from service.api.schemas.labelstudio import LSHealth, LSPredictions, LSSetup, LSTaskPrediction, LSVersions
from service.drafting.answer import class_summaries
from service.drafting.batcher import BatcherClosed
from service.drafting.refined import kept_draft, refined_prediction
from service.drafting.scores import region_alternatives
from service.integrations.labelstudio import (
    LabelConfig,
    LabelConfigError,
    class_labels,
    parse_label_config,
    prediction_regions,
    project_id,
    task_image_ref,
)
from service.integrations.labelstudio_client import Connections, ImageUnavailable
from service.integrations.labelstudio_interactive import (context_edits, interactive_context, refined_regions,
                                                          with_region_meta)
from service.integrations.labelstudio_setup import Problem, access_problems, check_webhook, label_problems

log = logging.getLogger("tailor.labelstudio")
PREFIX = f"{API_PREFIX}/labelstudio"
router = APIRouter(prefix=PREFIX, tags=["labelstudio"])


def refusal(hints: list[str], body: dict) -> JSONResponse:
    """A 307 to /refused/<hints>, which answers 400: LS follows it and shows its users the final URL
    (`400 Client Error: Bad Request for url: .../refused/set-TAILOR_LABELSTUDIO_TOKEN`); other clients read
    the body of the 307."""
    location = f"{PREFIX}/refused/" + "/".join(quote(h, safe=":") for h in hints)
    return JSONResponse(body, status_code=307, headers={"Location": location})


@router.api_route("/refused/{reason:path}", methods=["GET", "POST"], include_in_schema=False)
async def refused(reason: str, _auth: LabelStudioAccess) -> None:
    raise HTTPException(400, f"refused: {reason} (GET {PREFIX}/status says more)")


async def json_body(request: Request) -> dict[str, Any]:
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
async def health(request: Request, _auth: LabelStudioAccess) -> LSHealth:
    engine = getattr(request.app.state, "engine", None)
    if engine is None or not request.app.state.ready:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "5"})
    return LSHealth(status="UP", model_class="tailor", model_version=engine.predictor.version)


@router.post("/setup", response_model=LSSetup, responses={307: {"description": "refused: a redirect naming why"}})
async def setup(request: Request, engine: EngineDep, settings: SettingsDep, conns: ConnectionsDep,
                _auth: LabelStudioAccess) -> Any:
    """LS connects a project (and calls again before each prediction batch): remember its hostname, token and
    config, check that its photos can be fetched and its labels used, give its webhook credentials if needed;
    answer the model version (a new one makes LS ask for predictions again)."""
    body = await json_body(request)
    pid = project_id(body.get("project"))
    conns.remember(pid, body.get("hostname"), body.get("access_token"), body.get("schema"))
    conn = conns.resolve(pid)
    problems, missing, matched = await access_problems(conns, conn, settings), [], {}
    taxonomy, mapping = engine.predictor.taxonomy, settings.labelstudio_label_map
    try:
        config = parse_label_config(body.get("schema") or "")
        label_issue, missing = label_problems(config, taxonomy, mapping)
        problems += label_issue
        matched = {c.name: class_labels(c, taxonomy, mapping) for c in config.controls}
    except LabelConfigError as exc:
        problems.append(Problem(str(exc), "label-config:needs-BrushLabels-or-PolygonLabels-on-an-Image"))
    webhook = None
    if pid is not None and not problems:
        needed = request.headers.get("authorization") if labelstudio_needs_credentials(settings) else None
        webhook = await check_webhook(conns, conn, pid, request.url.path.rsplit("/", 1)[0] + "/webhook", needed,
                                      lambda headers: labelstudio_accepts(settings, headers))
    conns.activity.setup(pid, [p.message for p in problems], webhook)
    if problems:
        log.warning("LS project %s refused at setup: %s", pid, "; ".join(p.message for p in problems))
        return refusal([p.hint for p in problems], {"detail": [p.message for p in problems]})
    if missing:
        log.info("LS project %s: classes %s have no label in its config and are left out", pid, missing)
    return LSSetup(model_version=engine.predictor.version, classes_without_label=missing, webhook=webhook,
                   labels={name: {taxonomy.names[cid]: label for cid, label in labels.items()}
                           for name, labels in matched.items()})


@router.get("/versions", response_model=LSVersions)
async def versions(engine: EngineDep, _auth: LabelStudioAccess) -> LSVersions:
    return LSVersions(versions=[engine.predictor.version])


async def _predict_task(task: Any, config: LabelConfig, conn, conns: Connections, engine, settings,
                        gate: asyncio.Semaphore, keep: bool = False) -> LSTaskPrediction | list:
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
            reason = str(exc)
        except Exception as exc:  # a bug must not cost the other tasks of the batch their drafts
            log.exception("LS task %s: prediction failed", task.get("id"))
            reason = f"internal error ({type(exc).__name__})"
    return _no_draft(task, reason, version, conns)


def _no_draft(task: Any, reason: str, version: str, conns: Connections) -> LSTaskPrediction | list:
    """An empty prediction under a version that says why (LS shows it with the task's predictions), never
    under the live one: LS skips tasks holding a prediction of the live version, so that would stick. A task
    already holding this very failure gets none (an empty list: LS stores nothing), rather than a second copy."""
    task_id = task.get("id") if isinstance(task, dict) else None
    log.warning("LS task %s: no prediction: %s", task_id, reason)
    conns.activity.task_failed(task_id, reason)
    failed = f"{version} no draft: {reason}"[:500]
    held = task.get("predictions") if isinstance(task, dict) else None
    if isinstance(held, list) and any(isinstance(p, dict) and p.get("model_version") == failed for p in held):
        return []
    return LSTaskPrediction(result=[], model_version=failed, error=reason)


@router.post("/predict", response_model=LSPredictions, response_model_exclude_unset=True)
async def predict(request: Request, engine: EngineDep, settings: SettingsDep, conns: ConnectionsDep,
                  _auth: LabelStudioAccess) -> LSPredictions:
    """Drafts for a batch of LS tasks: brushlabels (and polygonlabels) regions, a score, the model version."""
    body = await json_body(request)
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
