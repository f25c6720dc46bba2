"""POST /v1/refine: a draft with an annotator's clicks and strokes applied, answered as /v1/predict answers.

The photo comes as in /v1/predict (multipart, the raw body, base64 or a URL) or as the content hash of a
photo whose draft is kept; the model runs only when no draft of the photo is kept. Same access rule as
/v1/predict: it hands back a draft of the caller's own photo.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api import API_PREFIX
from service.api.deps import EngineDep, MetricsDep, SettingsDep, inference_slot, read_form
from service.api.routes.predict import FormatsQuery, LeftRightQuery, decode_base64, form_options
from service.api.schemas.predict import PredictResponse
from service.api.schemas.refine import CONTENT_HASH, EDITS_DOC, RefineRequest
from service.drafting.answer import answer_for
from service.drafting.fetch import fetch_url
from service.drafting.refined import kept_draft, refined_prediction
from service.drafting.scores import region_alternatives
from service.formats import parse_formats

router = APIRouter(prefix=f"{API_PREFIX}/refine", tags=["refine"])

_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["edits"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "the photo (or send content_hash)"},
        "content_hash": {"type": "string", "description": "a /v1/predict answer's content_hash"},
        "edits": {"type": "string", "description": "JSON list (a text field or a file): " + EDITS_DOC},
        "formats": {"type": "string"}, "confidence_map": {"type": "boolean"}, "left_right": {"type": "boolean"}}}},
    **{ctype: {"schema": {"type": "string", "format": "binary"}} for ctype in ("image/*", "application/octet-stream")},
    "application/json": {"schema": {"$ref": "#/components/schemas/RefineRequest"}}}}}
EditsQuery = Annotated[str | None, Query(description="the edits as JSON, when the body is the photo itself")]


@dataclass
class RefineInput:
    photo: bytes | None   # None: refine the kept draft of `key`
    key: str | None
    name: str
    edits: Any
    options: dict[str, Any]


def _edits(text: str | bytes | None, where: str) -> Any:
    if text is None:
        raise HTTPException(422, f"no edits: send them as {where}")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(422, f"edits are not valid JSON ({exc})") from None


def _key(value: str) -> str:
    if not re.fullmatch(CONTENT_HASH, value.strip()):
        raise HTTPException(422, "content_hash must be the 64 hex digits of a /v1/predict answer's content_hash")
    return value.strip()


async def read_refine_input(request: Request, settings, edits_query: str | None) -> RefineInput:
    """The photo (or its content hash), the edits and the answer's options, from any body /v1/predict takes."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        data = await request.body()
        if not data:
            raise HTTPException(400, f"empty request body; send the image's bytes as the {ctype} body")
        return RefineInput(data, None, "request body", _edits(edits_query, "the edits query parameter"), {})
    if ctype == "multipart/form-data":
        form = await read_form(request, max_files=2, max_fields=10)
        upload, key = form.get("image"), form.get("content_hash")
        if (upload is None) == (key is None):
            raise HTTPException(400, "send the photo as the 'image' file field or its 'content_hash', exactly one "
                                     f"(fields sent: {sorted(form.keys())})")
        if upload is not None and not isinstance(upload, UploadFile):
            raise HTTPException(400, "field 'image' must be a file upload, not a text field")
        edits = form.get("edits")
        edits = await edits.read() if isinstance(edits, UploadFile) else edits if edits is not None else edits_query
        edits = _edits(edits, "an 'edits' field (text or file) or the edits query parameter")
        if upload is None:
            return RefineInput(None, _key(str(key)), "content_hash", edits, form_options(form))
        return RefineInput(await upload.read(), None, upload.filename or "image", edits, form_options(form))
    if ctype == "application/json" or ctype.endswith("+json"):
        body = await request.body()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:  # JSON is UTF-8 (RFC 8259)
            raise HTTPException(400, f"request body is not valid UTF-8 JSON ({exc})") from None
        try:
            req = RefineRequest.model_validate_json(body or b"null")
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
        options = {k: getattr(req, k) for k in ("formats", "confidence_map", "left_right")
                   if getattr(req, k) is not None}
        if req.content_hash is not None:
            return RefineInput(None, req.content_hash, "content_hash", req.edits, options)
        if req.image_url is not None:
            return RefineInput(await fetch_url(req.image_url, settings), None, req.image_url, req.edits, options)
        return RefineInput(decode_base64(req.image_base64, settings), None, "image_base64", req.edits, options)
    raise HTTPException(415, f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data (the photo "
                             "as 'image' or its 'content_hash', and 'edits'), the image as the body with the edits "
                             "in the query, or application/json with edits and image_base64, image_url or content_hash")


@router.post("", response_model=PredictResponse, response_model_exclude_none=True, openapi_extra=_BODY_DOC)
async def refine(request: Request, settings: SettingsDep, engine: EngineDep, metrics: MetricsDep,
                 formats: FormatsQuery = None, confidence_map: Annotated[bool, Query()] = False,
                 left_right: LeftRightQuery = False, edits: EditsQuery = None) -> Response:
    """Refine a draft with clicks and strokes: the new draft, in /v1/predict's answer shape.

    A click relabels the region under it (grown over the model's per-class probabilities), a negative
    click hands a region to its runner-up class (or to `to`), a stroke relabels its pixels and the
    similar ones around it. The draft kept for the photo (by /v1/predict, or by an earlier refine) is
    reused: `model_calls` is 0 then. Edits outside the photo, with unknown classes or malformed are a
    422; a content hash whose draft is no longer kept a 404 (409 when another model serves now).
    """
    t0 = time.perf_counter()
    wanted = parse_formats(formats)  # validated before any upload is read
    source = await read_refine_input(request, settings, edits)
    if "formats" in source.options:
        wanted = parse_formats(source.options["formats"])
    t1 = time.perf_counter()

    def work() -> bytes:
        with kept_draft(engine, source.photo, source.key, source.name) as kept:
            refined = refined_prediction(kept, source.edits)
            t_enc = time.perf_counter()
            pred = refined.prediction
            result = answer_for(pred, wanted, bool(source.options.get("confidence_map", confidence_map)),
                                bool(source.options.get("left_right", left_right)),
                                region_alternatives(kept.scores, pred.labels, settings.region_min_area))
        result.update(content_hash=kept.content_hash, edits=refined.edits, changed_pixels=refined.changed_pixels,
                      model_calls=kept.model_calls)
        result["timings_ms"] = {"read": round((t1 - t0) * 1000, 2), **result["timings_ms"],
                                "encode": round((time.perf_counter() - t_enc) * 1000, 2),
                                "total": round((time.perf_counter() - t0) * 1000, 2)}
        return pydantic_core.to_json(result)  # as /v1/predict: tens of thousands of run lengths

    with inference_slot(engine, settings, metrics):   # only once the photo (or its hash) and edits are in
        return Response(await run_in_threadpool(work), media_type="application/json")
