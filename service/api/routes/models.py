"""GET /v1/models/current: what is serving — version, taxonomy with colours, metrics, backend, size rule.

Annotators' tools read the taxonomy (names, ids, colours) from here rather than hard-coding it, so a
new model with a changed taxonomy cannot be rendered with stale colours.
"""
from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import PredictorDep
from service.api.routes import API_PREFIX
from service.api.schemas import ModelInfo
from service.results import FORMATS

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["models"])


@router.get("/current", response_model=ModelInfo)
async def current_model(predictor: PredictorDep) -> dict:
    """The model in use and how it sees images."""
    card = predictor.card
    taxonomy = predictor.taxonomy.to_dict()
    taxonomy["tag"] = predictor.taxonomy.tag
    return {"version": card["version"], "name": card.get("name"), "arch": card["arch"], "taxonomy": taxonomy,
            "metrics": card.get("metrics") or {}, "backend": predictor.backend.name,
            "device": str(predictor.backend.device), "input": card["input"], "formats": sorted(FORMATS)}
