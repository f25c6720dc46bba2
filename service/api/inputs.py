"""Reading request bodies: multipart forms within starlette's limits, and base64 photos in JSON.

A body that cannot be parsed is the client's mistake (400); a photo over max_upload_bytes is a 413
before its base64 is even decoded. Everything after the bytes (decoding, limits) is Engine.draft's.
"""
from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException, Request
from starlette.datastructures import FormData

from service.settings import Settings


def decode_base64(text: str, settings: Settings) -> bytes:
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


async def read_form(request: Request, **limits) -> FormData:
    """The multipart form with starlette's limits (max_files, max_fields, max_part_size); a body it
    cannot parse is the client's mistake (400), and the size limit's own 413 passes through."""
    try:
        return await request.form(**limits)
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(400, f"malformed multipart body ({exc})") from None
