"""GET /metrics: Prometheus text exposition of this app's registry.

Served at the root rather than under /v1 because that is where scrapers look by default.
"""
from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import MetricsDep
from service.api.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(m: MetricsDep) -> Response:
    """Request counts and latency by route, inference time, batch sizes, in-flight and queue depth."""
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
