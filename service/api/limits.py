"""A request-body size limit enforced while the body is being received, not after it is stored.

A declared Content-Length above the limit is refused before reading anything; a body without one
(chunked) is counted as it arrives and reading stops at the limit, answering 413 in both cases.
"""
from __future__ import annotations

import json
from collections.abc import Callable


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Pure ASGI middleware; `limit_for(path)` gives the byte limit of a request path (None: no limit)."""

    def __init__(self, app, limit_for: Callable[[str], int | None]):
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope.get("path", ""))
        if limit is None:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_413(send, int(declared), limit)

        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["exceeded"] = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message):
            # Once the limit is hit, whatever the app makes of the aborted read (often a 400 about a
            # broken form) is replaced by our 413.
            if state["exceeded"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not state["exceeded"]:
                raise
        if state["exceeded"] and not state["started"]:
            await _send_413(send, state["received"], limit)


async def _send_413(send, size: int, limit: int) -> None:
    body = json.dumps({"detail": f"request body is {size} bytes or more, above the limit of {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
