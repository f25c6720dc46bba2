"""The FastAPI app: create_app(settings) wires routes, limits, metrics and a lifespan owning the model.

The model is loaded once, in the lifespan (never at import, never per request), and one warm-up
inference runs before readiness turns true. Bad input always gets a 4xx JSON {"detail": ...}.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.api import errors
from service.api.limits import BodySizeLimit, UploadGuard
from service.api.metrics import Metrics, MetricsMiddleware
from service.api.request_id import HEADER as REQUEST_ID, RequestIdMiddleware
from service.api.routes import (batches, corrections, effort, health, jobs, labelstudio, labelstudio_events, metrics,
                                models, predict, qa, refine, worklist_review, worklists)
from service.api.routes.predict import MASK_HEADERS
from service.api.schemas.batches import FolderJobRequest
from service.api.schemas.predict import PredictRequest
from service.api.schemas.refine import RefineRequest
from service.drafting.engine import Engine
from service.drafting.model_swap import ModelSwitcher, follow_current, open_store_and_model
from service.jobs.batch_predict import run_batch_predict
from service.jobs.retrain_config import check_retrain_config
from service.jobs.worker import Worker, new_worker_id
from service.settings import MiB, Settings

log = logging.getLogger("tailor.service")


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    # Each predict request holds one worker thread from decoding to encoding (waiting on the model
    # between), so the pool must outnumber max_in_flight or admitted requests would queue for a thread.
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(limiter.total_tokens, settings.max_in_flight + 8)
    # In a thread: migrating the database and loading (and hashing) model files must not stall the loop.
    store, predictor = await asyncio.to_thread(open_store_and_model, settings, app.state.preloaded_predictor)
    try:
        # retrain_config is checked against the model it will fine-tune now, not by the first retrain.
        await asyncio.to_thread(_check_retrain_config, store, settings)
    except BaseException:
        store.close()
        raise
    app.state.store = store
    engine = Engine(predictor, settings, app.state.metrics)
    app.state.models = ModelSwitcher(engine, store, settings)
    try:
        if settings.warmup:
            seconds = await asyncio.to_thread(engine.warm_up)
            log.info("model %s warmed up in %.2f s on %s %s", predictor.version, seconds, predictor.backend.name,
                     predictor.backend.describe())
        # Batches (batch_predict jobs) are drafted here too, with the served model: the engine's batcher
        # and pixel budget then bound them with the requests. Other kinds run only in `tailor worker`.
        worker = Worker(store, settings, f"{new_worker_id()}-server", handlers={
            "batch_predict": partial(run_batch_predict, engine=engine, metrics=app.state.metrics)})
        worker_thread = worker.run_in_thread("tailor-batches")
    except BaseException:
        engine.close()
        store.close()
        raise
    app.state.engine, app.state.batch_worker = engine, worker
    # Promotions by the job worker (another process) land in the database; follow them here.
    poller = asyncio.create_task(follow_current(app.state.models, settings.model_poll_s)) \
        if settings.model_poll_s > 0 else None
    app.state.ready = True
    app.state.metrics.ready.set(1)
    try:
        yield
    finally:
        app.state.ready = False
        app.state.metrics.ready.set(0)
        if poller is not None:
            poller.cancel()
        worker.shutdown()  # a batch stops before its next photo and goes back to the queue
        await asyncio.to_thread(worker_thread.join, 30)
        engine.close()
        app.state.engine = None
        store.close()
        app.state.store = None


def _check_retrain_config(store, settings: Settings) -> None:
    with store.session() as session:
        check_retrain_config(session, settings)


def _document_manual_bodies(app: FastAPI) -> None:
    """Routes that read JSON or multipart themselves reference these schemas; add them to the docs. And a
    422 says why in words when the check is not the schema's (a mask of the wrong size): detail may be a
    string as well as pydantic's list of errors."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (PredictRequest, RefineRequest, FolderJobRequest):
                components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            if "HTTPValidationError" in components:
                detail = components["HTTPValidationError"]["properties"]["detail"]
                components["HTTPValidationError"]["properties"]["detail"] = {
                    "anyOf": [{k: v for k, v in detail.items() if k != "title"}, {"type": "string"}],
                    "title": "Detail"}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, predictor=None) -> FastAPI:
    """Build the app. `predictor` lets a caller (tests, the benchmark) share an already loaded model."""
    settings = settings or Settings()
    app = FastAPI(title="Tailor pre-annotation service", version="1",
                  description="Draft garment masks for annotators: predict one photo, or run batch jobs.",
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.preloaded_predictor = predictor
    app.state.metrics = Metrics()
    app.state.ready = False
    app.state.engine = None
    app.state.store = None
    for module in (predict, refine, batches, corrections, models, jobs, health, worklists, worklist_review, effort,
                   qa, metrics, labelstudio, labelstudio_events):
        app.include_router(module.router)
    app.include_router(qa.corrections_router)

    def body_limit(path: str) -> int | None:
        if path.startswith(("/v1/batches", "/v1/worklists")):  # worklists take photo batches too
            return settings.max_batch_upload_bytes
        if path.startswith("/v1/predict"):
            return settings.predict_body_limit
        if path.startswith("/v1/refine"):
            return settings.predict_body_limit + MiB  # the photo, and room for the edits' stroke points
        if path.startswith(("/v1/corrections", "/v1/qa")):
            return settings.max_mask_upload_bytes
        if path.startswith("/v1/labelstudio"):
            return settings.labelstudio_max_body_bytes  # task batches, brush RLE in annotations
        return 64 * 1024  # nothing else takes a real body

    # The last added is outermost: metrics also count the 413s of the size limit, which in turn sees
    # the body before anything inside reads it.
    app.add_middleware(BodySizeLimit, limit_for=body_limit)
    app.add_middleware(UploadGuard, deadline_s=settings.upload_timeout_s, max_uploads=settings.max_uploads_in_flight,
                       retry_after_s=settings.retry_after_s)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    if settings.cors_origins:
        # Outside the size limit and auth, so a browser's preflight gets its answer; tokens travel in
        # Authorization or X-API-Token headers, not cookies, so no credentials mode.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=[REQUEST_ID, "Retry-After", *MASK_HEADERS])
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer, even a 413 or a preflight, has an id

    _document_manual_bodies(app)

    errors.install(app, settings.retry_after_s)
    return app
