"""Liveness and readiness: /v1/health/live answers while the process runs; /ready only once warmed up.

An orchestrator restarts on failed liveness and routes traffic on readiness, so readiness is false
while the model loads and warms up, and again while the server shuts down.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api import API_PREFIX
from service.api.schemas.health import Liveness, Readiness

router = APIRouter(prefix=f"{API_PREFIX}/health", tags=["health"])


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    """The process is up and its event loop responds."""
    return Liveness(status="alive")


@router.get("/ready", response_model=Readiness, response_model_exclude_none=True,
            responses={503: {"model": Readiness, "description": "model not loaded yet, or shutting down"}})
async def ready(request: Request) -> Readiness | JSONResponse:
    """200 once the model is loaded and a warm-up inference has run; 503 before that."""
    state = request.app.state
    engine = getattr(state, "engine", None)
    if not getattr(state, "ready", False) or engine is None:
        return JSONResponse(Readiness(ready=False, detail="model not loaded yet").model_dump(exclude_none=True),
                            status_code=503, headers={"Retry-After": "5"})
    return Readiness(ready=True, model_version=engine.predictor.version, backend=engine.predictor.backend.name,
                     in_flight=engine.in_flight, queue_depth=engine.batcher.depth)
