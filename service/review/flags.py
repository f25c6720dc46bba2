"""A Flag is one finding of a QA check: what, where (bbox and the pixels themselves), how bad.
flag_overlay_png renders a small crop of the photo or colour map with the flagged pixels highlighted,
so a reviewer sees at a glance what a flag means without opening the whole image.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from service.drafting.label_maps import Parts, check_map, check_same_shape
from service.review.measures import colorize

SEVERITIES = ("error", "warning", "info")  # error: must fix; warning: look at it; info: for the record


@dataclass(frozen=True)
class Flag:
    check: str
    classes: tuple[str, ...]
    message: str
    bbox: tuple[int, int, int, int]   # x0, y0, x1, y1 in image pixels; x1, y1 exclusive (numpy slice ends)
    area: int                         # flagged pixels
    severity: str                     # "error" (must fix), "warning" (look at it), "info"
    resolved: bool = False
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)  # bool, bbox-sized

    @property
    def key(self) -> str:
        """Stable identity for marking a flag resolved across requests (same inputs, same key)."""
        return f"{self.check}:{'+'.join(self.classes)}:{','.join(map(str, self.bbox))}"

    def to_dict(self) -> dict:
        return {"key": self.key, "check": self.check, "classes": list(self.classes), "message": self.message,
                "bbox": list(self.bbox), "area": self.area, "severity": self.severity, "resolved": self.resolved}



def part_flag(check: str, classes, message: str, p: Parts, i: int, severity: str) -> Flag:
    """Flag for part `i` of `p`; cropped before comparing, so hundreds of specks stay cheap."""
    x0, y0, x1, y1 = (int(v) for v in p.bboxes[i])
    crop = p.labels[y0:y1, x0:x1] == i
    return Flag(check, tuple(classes), message, (x0, y0, x1, y1), int(crop.sum()), severity, pixels=crop)


def mask_flag(check: str, classes, message: str, mask: np.ndarray, severity: str) -> Flag:
    """Flag for all True pixels of a full-image mask (which must not be empty)."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1])
    return Flag(check, tuple(classes), message, (x0, y0, x1, y1), int(crop.sum()), severity, pixels=crop)


def flag_overlay_png(flag: Flag, label_map: np.ndarray, image: np.ndarray | None = None,
                     palette: np.ndarray | None = None, pad: int = 12, min_side: int = 128,
                     max_side: int = 256) -> bytes:
    """PNG bytes of a small crop around the flag: the photo (or the colour label map) with the flagged
    pixels tinted magenta and the bbox outlined; tiny crops are enlarged so a speck stays visible."""
    lm = check_map(label_map)
    h, w = lm.shape
    x0, y0, x1, y1 = flag.bbox
    cx0, cy0, cx1, cy1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    if image is not None:
        check_same_shape(lm, np.asarray(image), "image")
    base = colorize(lm, palette) if image is None else np.asarray(image)[..., :3]
    crop = base[cy0:cy1, cx0:cx1].astype(np.float32)
    hit = np.zeros(crop.shape[:2], dtype=bool)
    if flag.pixels is not None:
        hit[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = flag.pixels
    else:
        hit[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = True
    crop[hit] = 0.35 * crop[hit] + 0.65 * np.array([255, 0, 255], np.float32)
    out = crop.astype(np.uint8)
    longest = max(out.shape[:2])
    scale = min_side / longest if longest < min_side else min(1.0, max_side / longest)
    if scale != 1.0:
        size = (max(1, round(out.shape[1] * scale)), max(1, round(out.shape[0] * scale)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
    bx0, by0 = int((x0 - cx0) * scale), int((y0 - cy0) * scale)
    bx1, by1 = int(np.ceil((x1 - cx0) * scale)) - 1, int(np.ceil((y1 - cy0) * scale)) - 1
    cv2.rectangle(out, (bx0, by0), (bx1, by1), (255, 255, 0), 1)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="PNG")
    return buf.getvalue()
