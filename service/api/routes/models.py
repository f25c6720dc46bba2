"""Models under /v1/models: the versions in the model store, the one serving, and activation (hot swap).

Annotators' tools read the taxonomy (names, ids, colours) from /current rather than hard-coding it, so a
new model with a changed taxonomy cannot be rendered with stale colours. Activating is token-protected.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request

from models.card import ModelDirError
from service.api import API_PREFIX
from service.api.deps import EngineDep, ReadAccess, SettingsDep, StoreDep, WriteAccess
from service.api.schemas.models import ActivateRequest, Activation, ModelInfo, ModelVersionInfo, ModelVersions
from service.formats import FORMATS
from service.store.models_registry import ModelStoreError, current, get_model, list_models

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["models"])


@router.get("", response_model=ModelVersions)
def list_versions(store: StoreDep, engine: EngineDep, _auth: ReadAccess) -> ModelVersions:
    """Every version in the model store (oldest first) with its metrics, parent and status."""
    cur = current(store.session)
    version, serving = (cur.version if cur else None), engine.predictor.version
    return ModelVersions(current=version, serving=serving,
                         versions=[ModelVersionInfo.of(m, version, serving) for m in list_models(store.session)])


@router.get("/current", response_model=ModelInfo)
def current_model(engine: EngineDep, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> ModelInfo:
    """The model in use, how it sees images, and the limits on what the service accepts."""
    predictor = engine.predictor  # read once: a swap may happen meanwhile
    card = predictor.card
    taxonomy = predictor.taxonomy.to_dict()
    taxonomy["tag"] = predictor.taxonomy.tag
    row, cur = get_model(store.session, predictor.version), current(store.session)
    return ModelInfo(version=card["version"], name=card.get("name"), arch=card["arch"], taxonomy=taxonomy,
                     metrics=card.get("metrics") or {}, backend=predictor.backend.name,
                     device=str(predictor.backend.device), input=card["input"], formats=sorted(FORMATS),
                     precision=card.get("precision") or {"onnx": "fp32", "torch": "fp32"},
                     runtime=predictor.backend.describe(), parent=row.parent if row else None,
                     created=card.get("created"), status=row.status if row else None,
                     activated_at=cur.activated_at.isoformat() if cur and cur.version == predictor.version else None,
                     limits={k: getattr(settings, k) for k in ("max_upload_bytes", "max_pixels", "min_side",
                                                               "max_side", "max_in_flight",
                                                               "max_megapixels_in_flight")})


@router.post("/{version}/activate", response_model=Activation)
async def activate(version: str, request: Request, _auth: WriteAccess,
                   body: ActivateRequest | None = None) -> Activation:
    """Serve `version` from now on (promotion or rollback): loaded and warmed up first, then swapped in
    without failing requests in flight. The choice is stored, so it survives restarts."""
    switcher = getattr(request.app.state, "models", None)
    if switcher is None or not request.app.state.ready:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "5"})
    try:
        return Activation(**await asyncio.to_thread(switcher.activate, version, "api",
                                                    body.reason if body else None, bool(body and body.force)))
    except ModelStoreError as exc:
        raise HTTPException(404 if "no model version" in str(exc) else 409, str(exc)) from None
    except ModelDirError as exc:
        raise HTTPException(409, f"model version {version} cannot be loaded: {exc}") from None
