"""HTTP status codes for the service's plain exceptions: the one place where domain errors become answers.

Routes let drafting, format and folder errors propagate; create_app installs these handlers, so the same
refusal is a 400, 403, 404, 409, 413, 422 or 503 wherever it is raised. Every answer is JSON {"detail": ...}.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from models.images import reason, without_reprs

from service.api.request_id import HEADER as REQUEST_ID
from service.drafting.batcher import BatcherClosed
from service.drafting.errors import (DraftNotKept, DraftOfOtherModel, FolderNotFound, FolderOutsideRoot,
                                     FolderRefused, HostNotAllowed, PhotoRejected, PhotoTooLarge, TooManyPhotos)
from service.drafting.refine import EditError
from service.formats import UnknownFormatError

log = logging.getLogger("tailor.service")

# Most specific first: the first class an exception is an instance of gives its status.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (PhotoTooLarge, 413),
    (HostNotAllowed, 403),
    (PhotoRejected, 400),
    (UnknownFormatError, 422),
    (FolderOutsideRoot, 403),
    (FolderNotFound, 404),
    (TooManyPhotos, 413),
    (FolderRefused, 400),
    (EditError, 422),
    (DraftOfOtherModel, 409),
    (DraftNotKept, 404),
)


def status_of(exc: Exception) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


def install(app: FastAPI, retry_after_s: int) -> None:
    """Answer domain errors with their status, a closed batcher with 503, and anything else with a logged 500."""

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": reason(exc)}, status_code=status_of(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        # A message built from a library's exception may name an object by its memory address; a client
        # gets the words without it, whichever route built the message.
        if isinstance(exc.detail, str):
            exc.detail = without_reprs(exc.detail)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # As FastAPI answers, except that an input of raw bytes that is not UTF-8 is shown with
        # replacement characters instead of failing to encode (a 500).
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        return JSONResponse({"detail": errors}, status_code=422)

    for kind, _ in STATUS:
        app.add_exception_handler(kind, refused)

    @app.exception_handler(BatcherClosed)
    async def _closed(request: Request, exc: BatcherClosed) -> JSONResponse:
        return JSONResponse({"detail": "the server is shutting down; retry shortly"}, status_code=503,
                            headers={"Retry-After": str(retry_after_s)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input (bad input is a 4xx before this): log it in full, answer in JSON.
        # This answer is sent outside the middleware stack, so the id header is added here.
        rid = getattr(request.state, "request_id", "-")
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, rid)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); request id {rid}"},
                            status_code=500, headers={REQUEST_ID: rid})
