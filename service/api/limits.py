"""Request bodies: a size limit enforced while the body is received, and a deadline and a bound on uploads.

A declared Content-Length above the limit is refused before reading anything; a body without one
(chunked) is counted as it arrives and reading stops at the limit (413); a slow body is cut off (408).
"""
from __future__ import annotations

import asyncio
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


class _UploadTimedOut(Exception):
    pass


class UploadGuard:
    """Pure ASGI middleware bounding how request bodies arrive: each within `deadline_s` in total (a
    timeout per read would let a byte a second through), and at most `max_uploads` being received at
    once; beyond that a 503 with Retry-After at once. A request without a body passes untouched."""

    def __init__(self, app, deadline_s: float, max_uploads: int, retry_after_s: int):
        self.app, self.deadline_s, self.max_uploads, self.retry_after_s = app, deadline_s, max_uploads, retry_after_s
        self.receiving = 0   # touched only on the event loop's thread

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _has_body(scope):
            return await self.app(scope, receive, send)
        if self.receiving >= self.max_uploads:
            return await _send_json(send, 503, f"{self.receiving} uploads are arriving already (max_uploads_in_flight);"
                                               " retry later", [(b"retry-after", str(self.retry_after_s).encode())])
        self.receiving += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        state = {"receiving": True, "timed_out": False, "started": False}

        def body_done() -> None:
            if state["receiving"]:
                state["receiving"] = False
                self.receiving -= 1

        async def timed_receive():
            if not state["receiving"]:
                return await receive()   # after the body: waiting for a disconnect has no deadline
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                state["timed_out"] = True
                body_done()
                raise _UploadTimedOut() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done()
            return message

        async def guarded_send(message):
            if state["timed_out"]:
                return   # whatever the app makes of the aborted read, the answer is our 408
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except _UploadTimedOut:
            pass
        except Exception:
            if not state["timed_out"]:
                raise
        finally:
            body_done()
        if state["timed_out"] and not state["started"]:
            await _send_json(send, 408, f"the request body did not arrive within {self.deadline_s:g} s "
                                        "(upload_timeout_s)", [(b"connection", b"close")])


def _has_body(scope) -> bool:
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length")
    return (length is not None and length.strip() not in (b"", b"0")) or b"transfer-encoding" in headers


async def _send_json(send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
