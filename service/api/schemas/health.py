"""/v1/health: liveness and readiness, as an orchestrator and a load balancer read them."""
from __future__ import annotations

from pydantic import BaseModel, Field


class Liveness(BaseModel):
    status: str = Field(description="always alive: the process answers")


class Readiness(BaseModel):
    ready: bool
    model_version: str | None = None
    backend: str | None = Field(None, description="onnx or torch")
    in_flight: int | None = Field(None, description="predict requests in work")
    queue_depth: int | None = Field(None, description="images waiting for the model")
    detail: str | None = Field(None, description="why not ready")
