"""Every response carries an X-Request-ID: the caller's own (when it is a sane token) or a new one.

The id is also in the log lines written while the request runs, in the body of a 500 and in the
access line `tailor.access` writes per request (client, method, path, status, milliseconds), so a
failure an annotation tool reports can be found in the server's log.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from service.api.logs import request_id

HEADER = "X-Request-ID"
access_log = logging.getLogger("tailor.access")
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
        t0 = time.perf_counter()
        rid = incoming_or_new(dict(scope.get("headers") or []).get(HEADER.lower().encode()))
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id.set(rid)
        status: list[int] = []

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status.append(500)  # answered by the app's error handler, outside this middleware
            raise
        finally:
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                query = scope.get("query_string", b"").decode("latin-1")
                access_log.info("%s %s %s%s %s %.1f ms", client[0], scope.get("method", "-"), scope.get("path", ""),
                                f"?{query}" if query else "", status[0] if status else "-",
                                (time.perf_counter() - t0) * 1000)
            request_id.reset(token)
