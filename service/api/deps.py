"""Dependencies, declared once as Annotated aliases and reused by every route, reading a multipart form,
and the inference slot. They read what the lifespan put on app.state; a route that needs the model gets a
503 (with Retry-After) while it is still loading, and a slot is refused at once when saturated.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from starlette.datastructures import FormData
from sqlalchemy.orm import Session

from service.api.auth import require_data, require_labelstudio, require_read, require_write
from service.api.metrics import Metrics
from service.drafting.engine import Engine
from service.drafting.errors import Saturated
from service.integrations.labelstudio_client import Connections
from service.settings import Settings
from service.store import FileStore, Store


async def read_form(request: Request, **limits) -> FormData:
    """The multipart form with starlette's limits (max_files, max_fields, max_part_size); a body it
    cannot parse is the client's mistake (400), and the size limit's own 413 passes through."""
    try:
        return await request.form(**limits)
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(400, f"malformed multipart body ({exc})") from None


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None or not request.app.state.ready:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "5"})
    return engine


async def get_connections(request: Request) -> Connections:
    state = request.app.state
    conns = getattr(state, "labelstudio", None)
    if conns is None:  # created in the loop, on first use (no await between the check and the set)
        conns = state.labelstudio = Connections(state.settings)
    return conns


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ConnectionsDep = Annotated[Connections, Depends(get_connections)]  # Label Studio instances, per project


async def labelstudio_access(request: Request, conns: ConnectionsDep) -> None:
    """The LS routes' credentials; a refusal is counted, since LS itself logs none (GET .../status shows it)."""
    try:
        require_labelstudio(request)
    except HTTPException as exc:
        conns.activity.refusal(request.url.path, f"HTTP {exc.status_code}")
        raise


LabelStudioAccess = Annotated[None, Depends(labelstudio_access)]


@contextmanager
def inference_slot(engine: Engine, settings: Settings, metrics: Metrics) -> Iterator[None]:
    """Hold one of max_in_flight slots; none free means 503 now, not a queue. Routes take it once the
    request's photo is in (body received, URL fetched), so a slow client never holds one while sending."""
    try:
        engine.try_acquire()
    except Saturated as exc:
        metrics.rejected.inc()
        raise HTTPException(503, f"server busy: {exc}; retry later",
                            headers={"Retry-After": str(settings.retry_after_s)}) from None
    try:
        yield
    finally:
        engine.release()


# -- store and access -----------------------------------------------------------------------------
@dataclass
class StoreSession:
    """One database session per request, plus the content-addressed file area."""

    session: Session
    files: FileStore
    store: Store


def get_store(request: Request) -> Iterator[StoreSession]:
    # A sync generator: FastAPI runs it (and sync routes using it) in the threadpool, off the event loop.
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise HTTPException(503, "the store is not open yet", headers={"Retry-After": "5"})
    with store.session() as session:
        yield StoreSession(session, store.files, store)


StoreDep = Annotated[StoreSession, Depends(get_store)]
WriteAccess = Annotated[None, Depends(require_write)]   # token-protected: writes and administration
ReadAccess = Annotated[None, Depends(require_read)]     # open unless read_open is false
# Photos, masks and packages are the customer's data: never covered by read_open (docs/security.md).
DataAccess = Annotated[None, Depends(require_data)]


# -- ids and pages ----------------------------------------------------------------------------------
# Database ids are 64-bit signed integers (SQLite INTEGER, PostgreSQL BIGINT): a larger number would
# overflow in the driver (a 500), so every id and offset is bounded here, once, and answered with a 422.
MAX_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2^63-1)")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="matches to skip")]
