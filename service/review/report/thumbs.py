"""Overlay thumbnails for the report: the final mask's class colours over the photo, downscaled.
Small on purpose: the report inlines them as data URIs, so their size is the report's size.
The app makes one per image when a correction is saved and stores it as ImageRow.overlay_png.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from service.drafting.label_maps import check_map, check_same_shape
from service.review.measures import colorize, label_boundary


def overlay_thumbnail(image: np.ndarray, label_map: np.ndarray, palette: np.ndarray | None = None,
                      max_side: int = 360, alpha: float = 0.55) -> bytes:
    """PNG bytes: photo with garments tinted in their class colour and class edges drawn dark.

    Photo and map are downscaled first (the map with nearest neighbour, so no ids are invented) and
    then blended; background stays the plain photo so the person remains recognisable.
    """
    lm = check_map(label_map)
    photo = np.asarray(image)
    if photo.ndim == 2:
        photo = np.repeat(photo[:, :, None], 3, axis=2)
    check_same_shape(lm, photo, "image")
    h, w = lm.shape
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    photo = cv2.resize(np.ascontiguousarray(photo[..., :3]), size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(lm, size, interpolation=cv2.INTER_NEAREST)
    colour = colorize(small, palette).astype(np.float32)
    out = photo.astype(np.float32)
    garment = small != 0
    out[garment] = (1 - alpha) * out[garment] + alpha * colour[garment]
    # Dark edges separate touching classes of similar colour (skin next to a beige skirt).
    out[label_boundary(small)] *= 0.35
    buf = io.BytesIO()
    Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
