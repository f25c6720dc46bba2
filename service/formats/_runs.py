"""Run finding shared by the run-length encoders (COCO RLE, Label Studio brush).
A label map is scanned once into runs of equal ids; each class's binary runs are then derived from
those runs, so encoding k classes costs one pass over the pixels plus k passes over the (far fewer) runs.
"""
from __future__ import annotations

import cv2
import numpy as np


def check_label_map(label_map: np.ndarray) -> np.ndarray:
    """The label map as a 2-D uint8 array; anything else is a caller bug worth a clear message."""
    arr = np.asarray(label_map)
    if arr.ndim != 2:
        raise ValueError(f"label map must be 2-D (H, W), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"label map must be uint8 class ids, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"label map is empty (shape {arr.shape})")
    return arr


def check_mask(mask: np.ndarray) -> np.ndarray:
    """A 2-D binary mask as bool (any non-zero value is foreground)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"mask is empty (shape {arr.shape})")
    return arr if arr.dtype == np.bool_ else arr != 0


def value_runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, values) of the maximal runs of equal values in a 1-D array."""
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate((np.zeros(1, dtype=np.int64), change))
    return starts, flat[starts]


def binary_runs(starts: np.ndarray, values: np.ndarray, n: int, class_id: int) -> tuple[np.ndarray, bool]:
    """Run lengths of (flat == class_id) given the value runs of flat, and whether the first run is inside.

    Consecutive value runs that are all "not this class" merge into one background run.
    """
    inside = values == class_id
    edges = np.flatnonzero(inside[1:] != inside[:-1]) + 1
    bounds = np.concatenate((np.zeros(1, dtype=np.int64), starts[edges], np.array([n], dtype=np.int64)))
    return np.diff(bounds), bool(inside[0])


def present_classes(values: np.ndarray, class_ids=None) -> list[int]:
    """Sorted class ids present among run values, restricted to class_ids when given."""
    present = np.unique(values).tolist()
    if class_ids is None:
        return present
    wanted = {int(c) for c in class_ids}
    return [c for c in present if c in wanted]


def present_ids(label_map: np.ndarray) -> np.ndarray:
    """Sorted ids present in a 2-D uint8 label map, from its runs (several times faster than np.bincount,
    which widens every pixel to int64)."""
    flat = label_map.ravel()
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    seen = np.zeros(256, dtype=bool)
    seen[flat[starts]] = True
    seen[flat[0]] = True
    return np.flatnonzero(seen)


def class_mask(label_map: np.ndarray, class_id: int) -> np.ndarray:
    """uint8 mask of one class, 255 inside and 0 outside: (label_map == class_id) * 255 in one pass."""
    mask = np.equal(label_map, class_id).view(np.uint8)
    mask *= np.uint8(255)
    return mask


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2), inclusive, of the non-zero pixels of a uint8 mask; None when there are none."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0:
        return None
    return x, y, x + w - 1, y + h - 1
