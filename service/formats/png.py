"""PNG label maps: (H, W) uint8 class ids <-> 8-bit single-channel PNG bytes, plus per-class mask PNGs.
Also renders label maps in colour (a palette row per class) and alpha-blends that rendering over an
image, for previews; renderings are for people, the single-channel PNG is what round-trips.
"""
from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.formats._runs import check_label_map, check_mask, class_mask

__all__ = ["decode", "encode", "encode_class_masks", "encode_mask", "overlay", "render"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Level 1: label maps are mostly long runs, so harder compression buys little for its CPU time.
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)  # 2-D uint8 is saved as mode L
    return buf.getvalue()


def encode(label_map: np.ndarray) -> bytes:
    """8-bit greyscale PNG whose pixel values are the class ids."""
    return _png_bytes(check_label_map(label_map))


def encode_mask(mask: np.ndarray) -> bytes:
    """8-bit greyscale PNG of one binary mask, 255 inside, so it is visible when opened as an image."""
    return _png_bytes(check_mask(mask).astype(np.uint8) * np.uint8(255))


def encode_class_masks(label_map: np.ndarray, class_ids: list[int]) -> list[bytes]:
    """encode_mask(label_map == c) for each class id, byte for byte, the classes spread over the cores.

    Pillow's PNG encoder (filtering and zlib) releases the GIL, so on two cores a photo's dozen class
    masks take about 60% of the time they take one after another. Requests already running in
    parallel share the same small pool, so this adds no threads under load.
    """
    lm = check_label_map(label_map)
    if len(class_ids) < 2 or _WORKERS < 2:
        return [_png_bytes(class_mask(lm, c)) for c in class_ids]
    return list(_pool().map(lambda c: _png_bytes(class_mask(lm, c)), class_ids))


_WORKERS = min(4, os.cpu_count() or 1)
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_WORKERS, thread_name_prefix="tailor-png")
        return _POOL


def _forget_pool() -> None:
    # A forked child inherits the pool object but not its threads: it must start its own.
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def decode(data: bytes) -> np.ndarray:
    """Label map (H, W) uint8 from PNG bytes; a palette PNG yields its indices, colour PNGs are refused."""
    if not bytes(data[:8]) == _PNG_SIGNATURE:
        raise ValueError("not PNG data (bad signature)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode not in ("L", "P", "1"):
                raise ValueError(f"label map PNG must be single-channel 8-bit (L or P), got mode {img.mode}")
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"unreadable PNG ({exc})") from None
    return arr.astype(np.uint8) if arr.dtype != np.uint8 else arr


def _check_palette(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or pal.dtype != np.uint8:
        raise ValueError(f"palette must be (N, 3) uint8, got {pal.shape} {pal.dtype}")
    top = int(label_map.max())
    if top >= len(pal):
        raise ValueError(f"label map has class id {top} but the palette has only {len(pal)} colours")
    return pal


def render(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 with each pixel coloured by its class's palette row."""
    lm = check_label_map(label_map)
    return _check_palette(lm, palette)[lm]


def overlay(image: np.ndarray, label_map: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB uint8: the image with each non-background pixel blended towards its class colour.

    out = (1 - alpha) * image + alpha * colour, rounded; background (class 0) keeps the image untouched
    so the photo stays readable. A greyscale (H, W) image is treated as RGB with equal channels.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    lm = check_label_map(label_map)
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[:2] != lm.shape:
        raise ValueError(f"image {img.shape} must be RGB with the label map's size {lm.shape}")
    colours = _check_palette(lm, palette)[lm]
    blend = img.astype(np.float32) * (1.0 - alpha) + colours.astype(np.float32) * alpha
    out = img.copy()
    fg = lm != 0
    out[fg] = np.rint(blend[fg]).astype(np.uint8)
    return out
