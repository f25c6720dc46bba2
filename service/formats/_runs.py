"""What the encoders share: run finding, class masks and boxes, and LabelLayers, which computes each once.
A label map is scanned once into runs of equal ids; each class's binary runs are then derived from
those runs, so encoding k classes costs one pass over the pixels plus k passes over the (far fewer) runs.
"""
from __future__ import annotations

from functools import cached_property

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


def class_counts(starts: np.ndarray, values: np.ndarray, n: int,
                 class_ids=None) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Every class's binary run lengths at once, from the value runs of a flat label map of n pixels.

    Returns (classes, counts, bounds): for classes[k] (present ones, ascending; only those in class_ids
    when given), counts[bounds[k]:bounds[k + 1]] alternate outside/inside run lengths, starting outside
    (0 when the first pixel is inside) and ending with the last run: COCO's counts. The runs of all
    classes are handled in one set of array operations instead of one set per class.
    """
    ends = np.append(starts[1:], n)
    keep = np.zeros(256, dtype=bool)
    keep[values] = True
    if class_ids is not None:
        wanted = np.zeros(256, dtype=bool)
        wanted[[int(c) for c in class_ids if 0 <= int(c) < 256]] = True
        keep &= wanted
    picked = np.flatnonzero(keep[values])
    picked = picked[np.argsort(values[picked], kind="stable")]  # grouped by class, in pixel order
    ids, s, e = values[picked], starts[picked], ends[picked]
    first = np.concatenate(([True], ids[1:] != ids[:-1])) if ids.size else np.zeros(0, dtype=bool)
    last = np.append(first[1:], True) if ids.size else first
    prev_end = np.concatenate(([0], e[:-1]))
    prev_end[first] = 0
    pairs = np.stack((s - prev_end, e - s), axis=1).ravel()  # outside run, then inside run
    tail = n - e[last]
    has_tail = tail > 0
    counts = np.insert(pairs, 2 * (np.flatnonzero(last) + 1)[has_tail], tail[has_tail])
    sizes = 2 * np.diff(np.append(np.flatnonzero(first), ids.size)) + has_tail
    return ids[first].tolist(), counts, np.concatenate(([0], np.cumsum(sizes)))


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


class LabelLayers:
    """One label map and what the encoders derive from it, each computed on first use and then shared.

    Asking for five formats of one prediction used to find its classes seven times and build each
    full-size class mask three times; every format now reads what it needs from here. Class boxes come from the row runs, and
    formats that trace or scan a class (polygons, CVAT) work on its box only, never on a full-size mask.
    The cached arrays are read-only.
    """

    def __init__(self, label_map: np.ndarray):
        self.map = check_label_map(label_map)
        self._crops: dict[int, tuple[np.ndarray, int, int]] = {}

    @cached_property
    def row_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """value_runs of the row-major pixels (Label Studio, CVAT and areas read rows)."""
        return value_runs(self.map.ravel())

    @cached_property
    def column_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """value_runs of the column-major pixels (COCO); cv2's transpose is several times numpy's .T.ravel()."""
        return value_runs(cv2.transpose(self.map).ravel())

    @cached_property
    def present(self) -> np.ndarray:
        """Sorted class ids present."""
        seen = np.zeros(256, dtype=bool)
        seen[self.row_runs[1]] = True
        return np.flatnonzero(seen)

    def run_lengths(self) -> np.ndarray:
        starts, _ = self.row_runs
        return np.diff(np.append(starts, self.map.size))

    @cached_property
    def boxes(self) -> dict[int, tuple[int, int, int, int]]:
        """{class id: (x1, y1, x2, y2)}, inclusive, for every class present, from the row runs alone.

        A run that wraps onto the next row covers the rest of its first row and the start of its last,
        so its columns reach both image edges; one that stays in its row spans start..end columns.
        """
        h, w = self.map.shape
        starts, values = self.row_runs
        ends = np.append(starts[1:], h * w) - 1
        y0, x0 = np.divmod(starts, w)
        y1, x1 = np.divmod(ends, w)
        wraps = y1 > y0
        left, right = np.where(wraps, 0, x0), np.where(wraps, w - 1, x1)
        order = np.argsort(values, kind="stable")
        ids = values[order]
        first = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        per_class = [np.minimum.reduceat(left[order], first), np.minimum.reduceat(y0[order], first),
                     np.maximum.reduceat(right[order], first), np.maximum.reduceat(y1[order], first)]
        return {int(c): b for c, b in zip(ids[first].tolist(), zip(*(a.tolist() for a in per_class)))}

    def box(self, class_id: int) -> tuple[int, int, int, int] | None:
        """bounding_box of the class's mask: (x1, y1, x2, y2), inclusive; None when absent."""
        return self.boxes.get(int(class_id))

    def crop(self, class_id: int) -> tuple[np.ndarray, int, int]:
        """(mask, x, y): the class's uint8 mask (255 inside) over its box grown by one pixel on each side
        (clipped to the image), and where that crop starts. The class must be present."""
        if class_id not in self._crops:
            x1, y1, x2, y2 = self.boxes[class_id]
            ox, oy = max(x1 - 1, 0), max(y1 - 1, 0)
            mask = class_mask(self.map[oy:y2 + 2, ox:x2 + 2], class_id)
            mask.flags.writeable = False
            self._crops[class_id] = (mask, ox, oy)
        return self._crops[class_id]


def as_layers(label_map: "np.ndarray | LabelLayers") -> LabelLayers:
    """The LabelLayers of a label map; given LabelLayers, the same object (and its cached parts)."""
    return label_map if isinstance(label_map, LabelLayers) else LabelLayers(label_map)


def wanted_present(layers: LabelLayers, class_ids=None) -> list[int]:
    """The classes present in the layers' map, only those in class_ids when given, ascending."""
    present = layers.present.tolist()
    if class_ids is None:
        return present
    wanted = {int(c) for c in class_ids}
    return [c for c in present if c in wanted]
