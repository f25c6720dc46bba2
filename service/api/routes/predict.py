"""POST /v1/predict (JSON answer), /v1/predict/mask.png (label map) and /v1/predict/overlay.png (preview).

Each takes a multipart upload (field `image`), the image itself as the body, or JSON with image_base64
or image_url. Decoding and encoding run in the threadpool and the model on the engine's worker.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from models.images import encode_png
from service.api import API_PREFIX
from service.api.deps import EngineDep, MetricsDep, SettingsDep, inference_slot, read_form
from service.api.schemas.predict import PredictRequest, PredictResponse
from service.drafting.answer import LEFT_RIGHT_DOC, answer_for, output_classes
from service.drafting.engine import Draft
from service.drafting.fetch import fetch_url
from service.drafting.scores import region_alternatives
from service.formats import FORMATS, parse_formats
from service.formats import png as png_format

router = APIRouter(prefix=f"{API_PREFIX}/predict", tags=["predict"])

_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"},
        "formats": {"type": "string"}, "confidence_map": {"type": "boolean"},
        "left_right": {"type": "boolean", "description": LEFT_RIGHT_DOC}}}},
    **{ctype: {"schema": {"type": "string", "format": "binary"}} for ctype in ("image/*", "application/octet-stream")},
    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}}}
_PNG = {200: {"content": {"image/png": {}}, "description": "PNG image"}}
FormatsQuery = Annotated[str | None, Query(description=f"comma list of: {', '.join(sorted(FORMATS))}")]
LeftRightQuery = Annotated[bool, Query(description=LEFT_RIGHT_DOC)]
_FLAGS = ("confidence_map", "left_right")


def decode_base64(text: str, settings) -> bytes:
    """A photo's bytes from base64 (a browser's data: URL too)."""
    if not isinstance(text, str) or not text.strip():
        raise HTTPException(400, "image_base64 is empty")
    if text.startswith("data:"):  # accept data URLs as browsers produce them
        _, _, text = text.partition(",")
    text = "".join(text.split())
    if len(text) * 3 // 4 > settings.max_upload_bytes + 3:
        raise HTTPException(413, f"image_base64 is {len(text) * 3 // 4} bytes, above the limit of "
                                 f"{settings.max_upload_bytes} bytes (max_upload_bytes)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HTTPException(400, f"image_base64 is not valid base64 ({exc})") from None


def form_options(form) -> dict[str, Any]:
    """The answer's options sent as multipart text fields: formats and the flags."""
    options = {k: form.get(k) for k in ("formats", *_FLAGS) if isinstance(form.get(k), str)}
    for flag in _FLAGS:
        if flag in options:
            options[flag] = options[flag].strip().lower() in ("1", "true", "yes", "on")
    return options


async def read_input(request: Request, settings) -> tuple[bytes, str, dict[str, Any]]:
    """(image bytes, a name for messages, options found in the body) from multipart, a raw image body or
    JSON."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        # `curl --data-binary @photo.jpg`: the body is the file; what it is comes from its bytes, not the header.
        data = await request.body()
        if not data:
            raise HTTPException(400, f"empty request body; send the image's bytes as the {ctype} body")
        return data, "request body", {}
    if ctype == "multipart/form-data":
        form = await read_form(request, max_files=1, max_fields=10)
        upload = form.get("image")
        if upload is None:
            raise HTTPException(400, f"multipart body has no 'image' file field (fields sent: {sorted(form.keys())})")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "field 'image' must be a file upload, not a text field")
        data = await upload.read()
        return data, upload.filename or "image", form_options(form)
    if ctype == "application/json" or ctype.endswith("+json"):
        body = await request.body()
        if not body.strip():
            raise HTTPException(400, "empty request body; send JSON with image_base64 or image_url")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"request body is not valid JSON ({exc})") from None
        try:
            req = PredictRequest.model_validate(payload)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
        options = {k: getattr(req, k) for k in ("formats", *_FLAGS) if getattr(req, k) is not None}
        if req.image_url is not None:
            return await fetch_url(req.image_url, settings), req.image_url, options
        return decode_base64(req.image_base64, settings), "image_base64", options
    raise HTTPException(415, f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data with a "
                             "file field 'image', the image as an image/* or application/octet-stream body, "
                             "or application/json with image_base64 or image_url")


async def _draft(request: Request, settings, engine, metrics, finish: Callable[[Draft, dict], Any], check=None,
                 full_pixels: bool = False, keep: bool = False) -> Any:
    """Read the upload here, then draft and finish(draft, options) in one worker thread: one hand-off
    from the event loop per request instead of one per stage, and the photo's pixels held against the
    pixel budget until the answer is encoded. Unless finish needs the photo's `full_pixels`, a large
    JPEG is decoded only as large as the model needs; `keep` keeps the draft for /v1/refine."""
    t0 = time.perf_counter()
    data, name, options = await read_input(request, settings)
    if check is not None:
        check(options)  # options in the body are validated before any decoding or inference
    t1 = time.perf_counter()

    def work() -> Any:
        handed_over_ms = (time.perf_counter() - t1) * 1000  # waiting for a worker thread is queueing too
        with engine.draft(data, name, full_pixels=full_pixels, keep=keep) as draft:
            timings = draft.prediction.timings_ms
            draft.prediction.timings_ms = {"read": (t1 - t0) * 1000, **timings,
                                           "queue": timings["queue"] + handed_over_ms}
            return finish(draft, options)

    with inference_slot(engine, settings, metrics):   # only now: the photo is in
        return await run_in_threadpool(work)


@router.post("", response_model=PredictResponse, response_model_exclude_none=True, openapi_extra=_BODY_DOC)
async def predict(request: Request, settings: SettingsDep, engine: EngineDep, metrics: MetricsDep,
                  formats: FormatsQuery = None, confidence_map: Annotated[bool, Query()] = False,
                  left_right: LeftRightQuery = False) -> Response:
    """Predict garment classes of one photo: classes present, their areas and scores, and encodings.

    Any Pillow-readable photo works: grayscale, palette, RGBA (composited on white), 16-bit and CMYK
    are converted to RGB; EXIF orientation is applied (masks are in displayed coordinates); for an
    animated GIF/WebP/APNG only the first frame is predicted. With `left_right`, paired classes are split
    into the person's own left and right (the person's left is on the image's RIGHT) and the answer's
    `class_names` is the split list. `regions` lists each drafted region with its runner-up class; the
    draft is kept for POST /v1/refine under the answer's `content_hash`.
    """
    t0 = time.perf_counter()
    wanted = parse_formats(formats)  # validated before any upload is read

    def check(options: dict) -> None:
        nonlocal wanted
        if "formats" in options:
            wanted = parse_formats(options["formats"])

    def answer(draft: Draft, options: dict) -> bytes:
        t_enc = time.perf_counter()
        # The draft names the model that made it, which may differ from engine.predictor after a hot swap.
        result = answer_for(draft.prediction, wanted, bool(options.get("confidence_map", confidence_map)),
                            bool(options.get("left_right", left_right)),
                            region_alternatives(draft.scores, draft.labels, settings.region_min_area))
        result["content_hash"] = draft.content_hash
        result["timings_ms"]["encode"] = round((time.perf_counter() - t_enc) * 1000, 2)
        result["timings_ms"]["total"] = round((time.perf_counter() - t0) * 1000, 2)
        # Serialised here, in Rust, rather than validated against PredictResponse and dumped by json: the
        # answer holds tens of thousands of run lengths, and that round trip cost more than any encoder.
        # PredictResponse still documents it, and the tests validate real answers against it.
        return pydantic_core.to_json(result)

    return Response(await _draft(request, settings, engine, metrics, answer, check, keep=True),
                    media_type="application/json")


@router.post("/mask.png", response_class=Response, responses=_PNG, openapi_extra=_BODY_DOC)
async def predict_mask(request: Request, settings: SettingsDep, engine: EngineDep, metrics: MetricsDep,
                       left_right: LeftRightQuery = False) -> Response:
    """Just the label map: an 8-bit PNG whose pixel values are class ids, at the photo's displayed size.

    Header X-Class-Names lists the class of each id (comma separated), the left/right split one with
    `left_right` (the person's left is on the image's RIGHT).
    """
    def render(draft: Draft, options: dict) -> Response:
        labels, taxonomy = output_classes(draft.labels, draft.taxonomy, bool(options.get("left_right", left_right)))
        return Response(png_format.encode(labels), media_type="image/png", headers=_headers(draft, taxonomy))

    return await _draft(request, settings, engine, metrics, render)


@router.post("/overlay.png", response_class=Response, responses=_PNG, openapi_extra=_BODY_DOC)
async def predict_overlay(request: Request, settings: SettingsDep, engine: EngineDep, metrics: MetricsDep,
                          alpha: Annotated[float, Query(ge=0.0, le=1.0)] = 0.5,
                          left_right: LeftRightQuery = False) -> Response:
    """A colour preview for people: class colours blended over the photo (background left as is); with
    `left_right`, each paired class's right side in a lighter tint of its left side's colour."""
    def render(draft: Draft, options: dict) -> Response:
        labels, taxonomy = output_classes(draft.labels, draft.taxonomy, bool(options.get("left_right", left_right)))
        return Response(encode_png(png_format.overlay(draft.image, labels, taxonomy.palette(), alpha)),
                        media_type="image/png", headers=_headers(draft, taxonomy))

    return await _draft(request, settings, engine, metrics, render, full_pixels=True)


MASK_HEADERS = ("X-Model-Version", "X-Difficulty", "X-Input-Size", "X-Taxonomy", "X-Class-Names")


def _headers(draft: Draft, taxonomy) -> dict[str, str]:
    size = draft.prediction.input_size
    return {"X-Model-Version": draft.model_version, "X-Difficulty": f"{draft.difficulty:.4f}",
            "X-Input-Size": f"{size[1]}x{size[0]}", "X-Taxonomy": taxonomy.tag,
            "X-Class-Names": ",".join(taxonomy.names)}
