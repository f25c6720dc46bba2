"""Every response carries an X-Request-ID: the caller's own (when it is a sane token) or a new one.

The id is also in the log lines written while the request runs and in the body of a 500, so a
failure an annotation tool reports can be found in the server's log.
"""
from __future__ import annotations

import re
import uuid

from service.logs import request_id

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # anything else (spaces, newlines, huge) could forge log lines


def incoming_or_new(value: bytes | None) -> str:
    if value is not None:
        text = value.decode("latin-1")
        if _ACCEPTED.fullmatch(text):
            return text
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI middleware; the id is in scope["state"]["request_id"] (request.state.request_id)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = incoming_or_new(dict(scope.get("headers") or []).get(HEADER.lower().encode()))
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id.set(rid)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
