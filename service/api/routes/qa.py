"""POST /v1/qa/check: QA of an annotation as a tool delivers it, one layer per class (COCO RLE or Label
Studio brush RLE), before it is stored, the only place overlaps between layers can still be seen;
and GET /v1/corrections/{id}/qa: QA of a stored correction, in or out of a worklist.
"""
from __future__ import annotations

import numpy as np
from fastapi import APIRouter, HTTPException

from service.api import API_PREFIX
from service.api.deps import EngineDep, ReadAccess, RowId, SettingsDep, StoreDep
from service.api.routes.worklists import find_item
from service.api.schemas.review import CorrectionQA, FlagInfo, LayeredAnnotation, QACheck
from service.formats import coco_rle, ls_brush
from service.review.checklist import checklist
from service.review.checks import CHECKS, run_checks
from service.review.item_qa import correction_qa
from service.review.stored_maps import item_confidence, item_draft, taxonomy_for
from service.store.tables import Correction

router = APIRouter(prefix=f"{API_PREFIX}/qa", tags=["qa"])
corrections_router = APIRouter(prefix=f"{API_PREFIX}/corrections", tags=["corrections"])


def _decode_layers(body: LayeredAnnotation, names: list[str]) -> dict[str, np.ndarray]:
    if not body.layers:
        raise HTTPException(422, "layers is empty: send at least one class layer")
    if body.format == "ls_brush" and (body.width is None or body.height is None):
        raise HTTPException(422, "ls_brush layers need width and height")
    out: dict[str, np.ndarray] = {}
    for name, layer in body.layers.items():
        if name not in names:
            raise HTTPException(422, f"layer {name!r} is not a class of the taxonomy (classes: {names})")
        try:
            mask = (coco_rle.decode(layer) if body.format == "coco_rle"
                    else ls_brush.decode(layer, body.height, body.width))
        except (ValueError, TypeError, KeyError) as exc:
            raise HTTPException(422, f"layer {name!r} is not valid {body.format}: {exc}") from None
        first = next(iter(out.values()), None)
        if first is not None and mask.shape != first.shape:
            raise HTTPException(422, f"layer {name!r} is {list(mask.shape)}, others are {list(first.shape)}")
        out[name] = mask.astype(bool)
    return out


@router.post("/check", response_model=QACheck, response_model_exclude_unset=True)
def check(body: LayeredAnnotation, store: StoreDep, engine: EngineDep, settings: SettingsDep,
          _auth: ReadAccess) -> QACheck:
    """Every QA check on a layered annotation: overlaps between layers, then the checks on the label
    map the layers make (later layers win where they overlap, as the stores do)."""
    tax = engine.predictor.taxonomy
    layers = _decode_layers(body, tax.names)
    shape = next(iter(layers.values())).shape
    label_map = np.zeros(shape, np.uint8)
    for name, mask in layers.items():
        label_map[mask] = tax.class_id(name)
    draft = conf = None
    if (body.worklist is None) != (body.image_id is None):
        raise HTTPException(422, "give both worklist and image_id, or neither")
    if body.worklist is not None:
        item = find_item(store, body.worklist, body.image_id)[1]
        tax = taxonomy_for(item.worklist.taxonomy)
        draft, conf = item_draft(store.files, item), item_confidence(store.files, item)
        if draft.shape != shape:
            raise HTTPException(422, f"the layers are {shape[1]}x{shape[0]} (WxH) but photo {body.image_id} is "
                                     f"{draft.shape[1]}x{draft.shape[0]}")
    flags = run_checks(label_map, draft, conf, layers=layers, thresholds=settings.qa_thresholds, taxonomy=tax)
    return QACheck(flags=[FlagInfo(**f.to_dict(), explanation=CHECKS[f.check].description) for f in flags],
                   checklist=checklist(flags), classes=sorted(layers, key=tax.class_id))


@corrections_router.get("/{correction_id}/qa", response_model=CorrectionQA, response_model_exclude_unset=True)
def qa_of_correction(correction_id: RowId, store: StoreDep, settings: SettingsDep, _auth: ReadAccess) -> CorrectionQA:
    """QA of one stored correction: flags, checklist and effort (against its own draft, or the draft of
    the worklist that holds its photo)."""
    row = store.session.get(Correction, correction_id)
    if row is None:
        raise HTTPException(404, f"no correction {correction_id}")
    return CorrectionQA(**correction_qa(store.session, store.files, row, settings.qa_thresholds))
