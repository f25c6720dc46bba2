"""Getting a photo out of a request: a multipart upload, base64 in JSON, or a URL on an allowed host.

Every failure is a 4xx with a message saying what was wrong; each limit is checked before the step it
protects (bytes before decoding, pixels before decoding pixels), so hostile input costs little.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Callable

import httpx
import numpy as np
from fastapi import HTTPException
from PIL import Image

from service.settings import Settings
from models.images import ImageDecodeError, ImageTooLarge, decode_image, decode_image_for


class InputError(HTTPException):
    """Bad client input: a 4xx with a message. Code outside HTTP (batch jobs, the CLI) catches it too."""


_BUFFER_REPR = re.compile(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def too_large(what: str, size: int, limit: int) -> InputError:
    return InputError(413, f"{what} is {size} bytes, above the limit of {limit} bytes (max_upload_bytes)")


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None if Pillow cannot even identify the file."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # undecodable input is reported by decode_image with its own message
        return None


def declared_pixels(data: bytes, settings: Settings) -> int:
    """Width x height from the header, what a prediction of the photo will hold in memory (engine.pixels);
    0 for bytes that will be refused before any pixel is decoded (unreadable, or above max_pixels)."""
    size = _declared_size(data)
    if size is None or size[0] * size[1] > settings.max_pixels:
        return 0
    return size[0] * size[1]


def decode_bytes(data: bytes, name: str, settings: Settings) -> np.ndarray:
    """Bytes -> upright RGB uint8 at full size, or a 4xx. Blocking (decoding is CPU work): call it in a thread."""
    return decode_upload(data, name, settings)[0]


def decode_upload(data: bytes, name: str, settings: Settings,
                  size_for: Callable[[int, int], tuple[int, int]] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Bytes -> (upright RGB uint8, the photo's displayed (H, W)), or a 4xx. With `size_for` (the model's
    size rule) a large JPEG is decoded only as large as the model needs (decode_image_for)."""
    if not data:
        raise InputError(400, f"{name}: empty file (0 bytes)")
    if len(data) > settings.max_upload_bytes:
        raise too_large(name, len(data), settings.max_upload_bytes)
    size = _declared_size(data)
    if size is not None:
        w, h = size
        if w * h > settings.max_pixels:
            # A decompression bomb is refused here, from its header, before any pixel is decoded.
            raise InputError(413, f"{name}: image is {w}x{h} = {w * h} pixels, above the limit of "
                                     f"{settings.max_pixels} (max_pixels)")
    try:
        if size_for is None:
            image = decode_image(data, origin=name, max_pixels=settings.max_pixels)
            shape = image.shape[:2]
        else:
            image, shape = decode_image_for(data, size_for, origin=name, max_pixels=settings.max_pixels)
    except ImageTooLarge as exc:  # Pillow's bomb guard refused to open it at all
        raise InputError(413, f"{exc} (max_pixels: {settings.max_pixels})") from None
    except ImageDecodeError as exc:
        # Pillow names the in-memory buffer ("<_io.BytesIO object at 0x...>"): noise to a client.
        raise InputError(400, _BUFFER_REPR.sub("", str(exc))) from None
    except Exception as exc:  # a corrupt file can trip odd errors deep in a codec; still the client's input
        raise InputError(400, f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    h, w = shape
    if min(h, w) < settings.min_side:
        raise InputError(400, f"{name}: image is {w}x{h}, smaller than the minimum side of "
                                 f"{settings.min_side} px (min_side)")
    return image, (int(h), int(w))


def decode_base64(text: str, settings: Settings) -> bytes:
    if not isinstance(text, str) or not text.strip():
        raise InputError(400, "image_base64 is empty")
    if text.startswith("data:"):  # accept data URLs as browsers produce them
        _, _, text = text.partition(",")
    text = "".join(text.split())
    if len(text) * 3 // 4 > settings.max_upload_bytes + 3:
        raise too_large("image_base64", len(text) * 3 // 4, settings.max_upload_bytes)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(400, f"image_base64 is not valid base64 ({exc})") from None


def _check_url(url: httpx.URL, settings: Settings, original_host: str | None = None,
               extra_hosts: tuple[str, ...] = ()) -> None:
    if url.scheme not in ("http", "https"):
        raise InputError(400, f"image_url must be http or https, got {url.scheme or 'no scheme'!r}")
    host = (url.host or "").lower()
    if original_host is not None and host != original_host:
        raise InputError(403, f"image_url redirected from {original_host!r} to another host {host!r}; refused")
    if host not in settings.allowed_url_hosts and host not in extra_hosts:
        raise InputError(403, f"image_url host {host!r} is not allowed "
                                 f"(allowed_url_hosts: {settings.allowed_url_hosts})")


async def fetch_url(raw_url: str, settings: Settings, *, headers: dict[str, str] | None = None,
                    extra_hosts: tuple[str, ...] = ()) -> bytes:
    """GET an image from an allowed host; redirects only within that host; size capped while streaming.

    headers (e.g. a Label Studio token) go only to that host; extra_hosts are allowed besides
    allowed_url_hosts (the configured Label Studio host).
    """
    if not settings.allowed_url_hosts and not extra_hosts:
        raise InputError(403, "image_url is disabled on this server (allowed_url_hosts is empty); "
                                 "upload the image or send image_base64")
    try:
        url = httpx.URL(raw_url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InputError(400, f"image_url is not a valid URL ({exc})") from None
    _check_url(url, settings, extra_hosts=extra_hosts)
    host, limit = (url.host or "").lower(), settings.max_upload_bytes
    # trust_env=False: proxies from the environment must not change where a request goes.
    async with httpx.AsyncClient(follow_redirects=False, timeout=settings.url_timeout_s, trust_env=False) as client:
        try:
            for _ in range(settings.max_redirects + 1):
                async with client.stream("GET", url, headers=headers) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location", "")
                        url = url.join(location)
                        _check_url(url, settings, original_host=host, extra_hosts=extra_hosts)
                        continue
                    if resp.status_code != 200:
                        raise InputError(400, f"image_url answered HTTP {resp.status_code}")
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise too_large("image_url content", int(declared), limit)
                    buf = bytearray()
                    async for chunk in resp.aiter_bytes():
                        buf += chunk
                        if len(buf) > limit:  # stop reading at once; do not trust content-length
                            raise too_large("image_url content", len(buf), limit)
                    return bytes(buf)
        except httpx.TimeoutException:
            raise InputError(400, f"image_url timed out after {settings.url_timeout_s} s") from None
        except httpx.HTTPError as exc:
            raise InputError(400, f"could not fetch image_url ({type(exc).__name__}: {exc})") from None
    raise InputError(400, f"image_url redirected more than {settings.max_redirects} times")


async def read_form(request, **limits):
    """The multipart form with starlette's limits (max_files, max_fields, max_part_size); a body it
    cannot parse is the client's mistake (400), and the size limit's own 413 passes through."""
    try:
        return await request.form(**limits)
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(400, f"malformed multipart body ({exc})") from None
