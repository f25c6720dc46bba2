"""Liveness and readiness: /v1/health/live answers while the process runs; /ready only once warmed up.

An orchestrator restarts on failed liveness and routes traffic on readiness, so readiness is false
while the model loads and warms up, and again while the server shuts down.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.routes import API_PREFIX

router = APIRouter(prefix=f"{API_PREFIX}/health", tags=["health"])


@router.get("/live")
async def live() -> dict:
    """The process is up and its event loop responds."""
    return {"status": "alive"}


@router.get("/ready", responses={503: {"description": "model not loaded yet, or shutting down"}})
async def ready(request: Request) -> JSONResponse:
    """200 once the model is loaded and a warm-up inference has run; 503 before that."""
    state = request.app.state
    engine = getattr(state, "engine", None)
    if not getattr(state, "ready", False) or engine is None:
        return JSONResponse({"ready": False, "detail": "model not loaded yet"}, status_code=503,
                            headers={"Retry-After": "5"})
    return JSONResponse({"ready": True, "model_version": engine.predictor.version,
                         "backend": engine.predictor.backend.name, "in_flight": engine.in_flight,
                         "queue_depth": engine.batcher.depth})
