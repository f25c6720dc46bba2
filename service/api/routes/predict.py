"""POST /v1/predict (JSON answer), /v1/predict/mask.png (label map) and /v1/predict/overlay.png (preview).

Each takes a multipart upload (field `image`), the image itself as the body, or JSON with image_base64
or image_url. Decoding and encoding run in the threadpool and the model on the engine's worker.
"""
from __future__ import annotations

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

from service.api.deps import EngineDep, PredictSlot, SettingsDep
from service.api.inputs import decode_base64, declared_pixels, decode_upload, fetch_url, read_form
from service.api.routes import API_PREFIX
from service.api.schemas import PredictRequest, PredictResponse
from service.formats import png as png_format
from service.results import (
    FORMATS,
    LEFT_RIGHT_DOC,
    UnknownFormatError,
    output_classes,
    parse_formats,
    prediction_result,
)

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
        options = {k: form.get(k) for k in ("formats", *_FLAGS) if isinstance(form.get(k), str)}
        for flag in _FLAGS:
            if flag in options:
                options[flag] = options[flag].strip().lower() in ("1", "true", "yes", "on")
        return data, upload.filename or "image", options
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


def _formats(value) -> list[str]:
    try:
        return parse_formats(value)
    except UnknownFormatError as exc:
        raise HTTPException(422, str(exc)) from None


async def _predict(request: Request, settings, engine, finish: Callable[[Any, Any, dict], Any], check=None,
                   full_pixels: bool = False) -> Any:
    """Read the upload here, then decode, predict and finish(image, prediction, options) in one worker
    thread: one hand-off from the event loop per request instead of one per stage. Unless finish needs
    the photo's `full_pixels`, a large JPEG is decoded only as large as the model needs."""
    t0 = time.perf_counter()
    data, name, options = await read_input(request, settings)
    if check is not None:
        check(options)  # options in the body are validated before any decoding or inference
    t1 = time.perf_counter()

    def work() -> Any:
        # From decoding to the encoded answer the photo's pixels count against the engine's budget.
        with engine.pixels.hold(declared_pixels(data, settings)):
            t1b = time.perf_counter()
            image, shape = decode_upload(data, name, settings, None if full_pixels else engine.predictor.size_for)
            t2 = time.perf_counter()
            pred = engine.predict(image, shape)  # the model runs on the engine's worker (GPU batches form there)
            # "batch" is a count (how many images shared the model call), not a time; metrics record it.
            pred.timings_ms = {"read": (t1 - t0) * 1000, "decode": (t2 - t1b) * 1000,
                               **{k: v for k, v in pred.timings_ms.items() if k != "batch"}}
            pred.timings_ms["queue"] = pred.timings_ms.get("queue", 0.0) + (t1b - t1) * 1000  # and for the budget
            return finish(image, pred, options)

    return await run_in_threadpool(work)


@router.post("", response_model=PredictResponse, response_model_exclude_none=True, openapi_extra=_BODY_DOC)
async def predict(request: Request, settings: SettingsDep, engine: EngineDep, _slot: PredictSlot,
                  formats: FormatsQuery = None, confidence_map: Annotated[bool, Query()] = False,
                  left_right: LeftRightQuery = False) -> Response:
    """Predict garment classes of one photo: classes present, their areas and scores, and encodings.

    Any Pillow-readable photo works: grayscale, palette, RGBA (composited on white), 16-bit and CMYK
    are converted to RGB; EXIF orientation is applied (masks are in displayed coordinates); for an
    animated GIF/WebP/APNG only the first frame is predicted. With `left_right`, paired classes are split
    into the person's own left and right (the person's left is on the image's RIGHT) and the answer's
    `class_names` is the split list.
    """
    t0 = time.perf_counter()
    wanted = _formats(formats)  # validated before any upload is read

    def check(options: dict) -> None:
        nonlocal wanted
        if "formats" in options:
            wanted = _formats(options["formats"])

    def answer(_image, pred, options: dict) -> bytes:
        t_enc = time.perf_counter()
        # The prediction names the model that made it, which may differ from engine.predictor after a hot swap.
        result = prediction_result(pred, pred.taxonomy, pred.model_version, wanted,
                                   bool(options.get("confidence_map", confidence_map)),
                                   left_right=bool(options.get("left_right", left_right)))
        result["timings_ms"]["encode"] = round((time.perf_counter() - t_enc) * 1000, 2)
        result["timings_ms"]["total"] = round((time.perf_counter() - t0) * 1000, 2)
        # Serialised here, in Rust, rather than validated against PredictResponse and dumped by json: the
        # answer holds tens of thousands of run lengths, and that round trip cost more than any encoder.
        # PredictResponse still documents it, and the tests validate real answers against it.
        return pydantic_core.to_json(result)

    return Response(await _predict(request, settings, engine, answer, check), media_type="application/json")


@router.post("/mask.png", response_class=Response, responses=_PNG, openapi_extra=_BODY_DOC)
async def predict_mask(request: Request, settings: SettingsDep, engine: EngineDep, _slot: PredictSlot,
                       left_right: LeftRightQuery = False) -> Response:
    """Just the label map: an 8-bit PNG whose pixel values are class ids, at the photo's displayed size.

    Header X-Class-Names lists the class of each id (comma separated), the left/right split one with
    `left_right` (the person's left is on the image's RIGHT).
    """
    def render(_image, pred, options: dict) -> Response:
        labels, taxonomy = output_classes(pred.labels, pred.taxonomy, bool(options.get("left_right", left_right)))
        return Response(png_format.encode(labels), media_type="image/png", headers=_headers(pred, taxonomy))

    return await _predict(request, settings, engine, render)


@router.post("/overlay.png", response_class=Response, responses=_PNG, openapi_extra=_BODY_DOC)
async def predict_overlay(request: Request, settings: SettingsDep, engine: EngineDep, _slot: PredictSlot,
                          alpha: Annotated[float, Query(ge=0.0, le=1.0)] = 0.5,
                          left_right: LeftRightQuery = False) -> Response:
    """A colour preview for people: class colours blended over the photo (background left as is); with
    `left_right`, each paired class's right side in a lighter tint of its left side's colour."""
    def render(image, pred, options: dict) -> Response:
        from models.images import encode_png

        labels, taxonomy = output_classes(pred.labels, pred.taxonomy, bool(options.get("left_right", left_right)))
        return Response(encode_png(png_format.overlay(image, labels, taxonomy.palette(), alpha)),
                        media_type="image/png", headers=_headers(pred, taxonomy))

    return await _predict(request, settings, engine, render, full_pixels=True)


MASK_HEADERS = ("X-Model-Version", "X-Difficulty", "X-Input-Size", "X-Taxonomy", "X-Class-Names")


def _headers(pred, taxonomy) -> dict[str, str]:
    return {"X-Model-Version": pred.model_version, "X-Difficulty": f"{pred.difficulty:.4f}",
            "X-Input-Size": f"{pred.input_size[1]}x{pred.input_size[0]}", "X-Taxonomy": taxonomy.tag,
            "X-Class-Names": ",".join(taxonomy.names)}
