"""Label maps as drafting and review handle them: validated as (H, W) uint8 ids, split into connected parts.

The left/right split (drafting) and the QA checks and measures (review) both start from these.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def check_map(label_map: np.ndarray, name: str = "label map") -> np.ndarray:
    """A (H, W) uint8 label map, or ValueError naming what is wrong."""
    arr = np.asarray(label_map)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise ValueError(f"{name} values must be 0..255")
        arr = arr.astype(np.uint8)
    return arr


def check_same_shape(ref: np.ndarray, other: np.ndarray, name: str) -> None:
    if other.shape[:2] != ref.shape[:2]:
        raise ValueError(f"{name} has shape {other.shape[:2]}, expected {ref.shape[:2]}")


@dataclass(frozen=True)
class Parts:
    """Connected components of one binary mask (8-connectivity): label image and per-part stats."""
    labels: np.ndarray       # (H, W) int32, 0 = outside, 1..n = part
    areas: np.ndarray        # (n + 1,) px, index 0 unused
    bboxes: np.ndarray       # (n + 1, 4) x0, y0, x1, y1 with exclusive ends
    centroids: np.ndarray    # (n + 1, 2) x, y

    @property
    def count(self) -> int:
        return len(self.areas) - 1


def parts(mask: np.ndarray) -> Parts:
    n, lab, stats, cents = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    x, y, w, h = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    bboxes = np.stack([x, y, x + w, y + h], axis=1)
    return Parts(lab, stats[:, cv2.CC_STAT_AREA].astype(np.int64), bboxes, cents)
