"""CVAT mask encoding: binary masks <-> the "points" list of a CVAT shape of type "mask".
Row-major runs over the mask cropped to its bounding box, alternating and starting with background,
then the inclusive box [left, top, right, bottom]; equal to cvat_sdk.masks.encode_mask(mask) (bbox=None).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from service.formats._runs import LabelLayers, as_layers, bounding_box, check_mask, wanted_present

__all__ = ["decode", "decode_label_map", "encode", "encode_label_map"]


def encode(mask: np.ndarray) -> list[int]:
    """CVAT mask points: run lengths within the tight bbox, then [x1, y1, x2, y2] (inclusive corners).

    As in cvat_sdk, the first run counts background and is 0 when the box starts on a mask pixel,
    and an empty mask encodes as the 1x1 box at the origin holding one background pixel: [1, 0, 0, 0, 0].
    """
    m = check_mask(mask).view(np.uint8)
    box = bounding_box(m)
    if box is None:
        return [1, 0, 0, 0, 0]
    x1, y1, x2, y2 = box
    return _box_runs(m[y1:y2 + 1, x1:x2 + 1], box)


def _box_runs(inside: np.ndarray, box: tuple[int, int, int, int]) -> list[int]:
    # inside: the mask (non-zero inside) over exactly its bounding box `box`; runs are read there only.
    x1, y1, x2, y2 = box
    flat = inside.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    lengths = np.diff(bounds).tolist()
    if flat[0]:
        lengths.insert(0, 0)  # runs must start with background
    return lengths + [x1, y1, x2, y2]


def encode_label_map(label_map: np.ndarray | LabelLayers,
                     class_ids: Iterable[int] | None = None) -> dict[int, list[int]]:
    """{class_id: CVAT mask points} for each class present (only those in class_ids if given)."""
    layers = as_layers(label_map)
    out = {}
    for cid in wanted_present(layers, class_ids):
        crop, ox, oy = layers.crop(cid)
        x1, y1, x2, y2 = box = layers.box(cid)
        out[cid] = _box_runs(crop[y1 - oy:y2 - oy + 1, x1 - ox:x2 - ox + 1], box)
    return out


def decode(points: Sequence[float], height: int, width: int) -> np.ndarray:
    """Bool mask (H, W) from CVAT mask points; refuses boxes outside the image or runs that do not fill it."""
    if len(points) < 5:
        raise ValueError(f"CVAT mask points need runs plus a 4-value box, got {len(points)} values")
    values = np.asarray(points, dtype=np.float64)
    if not np.all(values == np.round(values)):
        raise ValueError("CVAT mask points must be whole numbers")
    ints = values.astype(np.int64)
    runs, (x1, y1, x2, y2) = ints[:-4], ints[-4:].tolist()
    if not (0 <= x1 <= x2 < width and 0 <= y1 <= y2 < height):
        raise ValueError(f"CVAT mask box {[x1, y1, x2, y2]} is not inside a {width}x{height} image")
    if runs.min() < 0:
        raise ValueError("CVAT mask has a negative run length")
    box_h, box_w = y2 - y1 + 1, x2 - x1 + 1
    if int(runs.sum()) != box_h * box_w:
        raise ValueError(f"CVAT mask runs cover {int(runs.sum())} pixels, its {box_w}x{box_h} box has "
                         f"{box_w * box_h}")
    flat = np.repeat((np.arange(runs.size) & 1).astype(bool), runs)
    out = np.zeros((height, width), dtype=bool)
    out[y1:y2 + 1, x1:x2 + 1] = flat.reshape(box_h, box_w)
    return out


def decode_label_map(points: dict[int, Sequence[float]], height: int, width: int) -> np.ndarray:
    """Label map (H, W) uint8 from {class_id: CVAT mask points}; later classes win where they overlap."""
    out = np.zeros((height, width), dtype=np.uint8)
    for cid, pts in points.items():
        out[decode(pts, height, width)] = int(cid)
    return out
