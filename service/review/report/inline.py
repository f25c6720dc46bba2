"""Images inlined into the report as data: URIs: charts as they are, thumbnails re-encoded small.
Each is decoded first: bytes that do not decode give None, so the page shows a placeholder instead
of a broken image (and a corrupt thumbnail in the database cannot break the whole report).
"""
from __future__ import annotations

import base64
import io

from PIL import Image

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def data_uri(blob: bytes | None) -> str | None:
    """data: URI of an image, or None when the bytes do not decode (a placeholder is shown instead)."""
    if not blob:
        return None
    try:
        with Image.open(io.BytesIO(blob)) as im:
            fmt = im.format
            im.verify()
    except Exception:  # noqa: BLE001 - any decoder error means: do not inline a broken image
        return None
    mime = MIME.get(fmt)
    return f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}" if mime else None


def thumb_uri(blob: bytes | None, max_side: int = 360) -> str | None:
    """A photo-like thumbnail as a JPEG data: URI at display size, None when it does not decode.

    Re-encoded because the report inlines every thumbnail: a 360 px overlay PNG is ~150 kB, the JPEG
    ~25 kB, so a batch's report stays mail-sized whatever size the caller's thumbnails are.
    """
    if not blob:
        return None
    try:
        with Image.open(io.BytesIO(blob)) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=85)
    except Exception:  # noqa: BLE001 - any decoder error means: show a placeholder, not a broken image
        return None
    return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
