"""One photo's kept model output (logits at model resolution), a bounded cache of them, and a draft's regions.

`PhotoScores` is what the service keeps in a `RefineCache` per (photo content hash, model version), so a
refine never runs the model again; `region_alternatives` lists each drafted region with its runner-up class.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from models.preprocessing import logits_to_labels

# Far enough below any real logit that a class set to it never wins, finite so the exact upsampled
# argmax of models.preprocessing keeps its fast path.
_EXCLUDED = -1.0e4
ALTERNATIVE_SAMPLES = 1 << 17  # pixels whose probabilities a draft's region alternatives average, at most


class PhotoScores:
    """The model's logits of one photo at model resolution, the photo's size, its class names and,
    optionally, its RGB pixels at full size (for colour edges). Immutable, so one copy can serve
    concurrent refines.
    """

    def __init__(self, logits: np.ndarray, size: tuple[int, int], class_names: Sequence[str],
                 image: np.ndarray | None = None):
        logits = np.asarray(logits)
        if logits.ndim != 3 or logits.shape[0] != len(class_names) or len(class_names) < 2:
            raise ValueError(f"logits of shape {logits.shape} do not match {len(class_names)} class names")
        if not np.all(np.isfinite(logits)):
            raise ValueError("logits must be finite")
        self.size = (int(size[0]), int(size[1]))
        if min(self.size) < 1:
            raise ValueError(f"photo size {size} is empty")
        if image is not None and (image.shape[:2] != self.size or image.ndim != 3 or image.shape[2] != 3
                                  or image.dtype != np.uint8):
            raise ValueError(f"image {image.shape} {image.dtype} is not uint8 RGB of the photo's size {self.size}")
        self.logits = _frozen(np.ascontiguousarray(logits, dtype=np.float32))
        self.class_names = tuple(class_names)
        self.image = None if image is None else _frozen(np.ascontiguousarray(image))
        # The best and second-best logit per model pixel: every class's margin follows from them.
        best = np.zeros(self.logits.shape[1:], dtype=np.uint8)
        first, second = self.logits[0].copy(), np.full(self.logits.shape[1:], -np.inf, dtype=np.float32)
        for c in range(1, len(self.class_names)):
            channel = self.logits[c]
            np.maximum(second, np.minimum(channel, first), out=second)
            best[channel > first] = c
            np.maximum(first, channel, out=first)
        self._best, self._first, self._second = _frozen(best), _frozen(first), _frozen(second)

    @property
    def nbytes(self) -> int:
        """Memory held: what a cache bounded by bytes should count."""
        arrays = (self.logits, self.image, self._best, self._first, self._second)
        return sum(a.nbytes for a in arrays if a is not None)

    def class_id(self, name: str) -> int:
        try:
            return self.class_names.index(name)
        except ValueError:
            raise KeyError(name) from None

    def draft(self) -> np.ndarray:
        """The model's own label map at full size: the same pixels /v1/predict answers with."""
        return logits_to_labels(self.logits, self.size)[0]

    def margin(self, class_id: int) -> np.ndarray:
        """(H, W) float32: the class's logit minus the best other class's, at full size (bilinear).

        exp(margin) is the class's probability over its strongest rival's: >= 0 where the model
        picks it, -2.3 where the rival is ten times as likely.
        """
        rival = np.where(self._best == class_id, self._second, self._first)
        low = self.logits[class_id] - rival
        return _upsample(low, self.size)

    def labels_without(self, class_id: int) -> np.ndarray:
        """(H, W) uint8: each pixel's best class other than `class_id`, as the draft would place it."""
        logits = self.logits.copy()
        logits[class_id] = _EXCLUDED
        return logits_to_labels(logits, self.size)[0]

    def probabilities_at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """(C, N) float32: the softmax of the upsampled logits at the N pixels (ys, xs), so each pixel's
        most probable class is its label in the draft (softmax first, then upsampling, can disagree on
        small specks). Interpolated at those pixels alone: no channel is upsampled whole."""
        (y0, y1, fy), (x0, x1, fx) = _axis(self.size[0], self.logits.shape[1], ys), \
            _axis(self.size[1], self.logits.shape[2], xs)
        at = self.logits[:, y0, x0] * ((1 - fy) * (1 - fx)) + self.logits[:, y0, x1] * ((1 - fy) * fx)
        at += self.logits[:, y1, x0] * (fy * (1 - fx)) + self.logits[:, y1, x1] * (fy * fx)
        return _softmax(at)

    def probabilities_on_grid(self, step: int) -> np.ndarray:
        """(C, ceil(H / step), ceil(W / step)) float32: `probabilities_at` every `step`-th pixel of every
        `step`-th row: one affine warp per channel samples the logits there as cv2.resize to the photo's
        size would (to float rounding), without the whole-size channels."""
        (h, w), (H, W) = self.logits.shape[1:], self.size
        grid = np.empty((len(self.class_names), -(-H // step), -(-W // step)), dtype=np.float32)
        to_source = np.array([[step * w / W, 0, 0.5 * w / W - 0.5], [0, step * h / H, 0.5 * h / H - 0.5]])
        for channel, out in zip(self.logits, grid):
            cv2.warpAffine(channel, to_source, out.shape[::-1], dst=out, borderMode=cv2.BORDER_REPLICATE,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        return _softmax(grid)


@dataclass(frozen=True)
class RegionAlternative:
    """One connected region of one class in a draft, and the class the model would give it next."""
    class_name: str
    area: int
    bbox: tuple[int, int, int, int]   # x, y, width, height in photo pixels
    probability: float                # the region's own class, mean over its pixels
    runner_up: str
    runner_up_probability: float      # mean over the region's pixels

    def as_dict(self) -> dict:
        return {"class": self.class_name, "area": self.area, "bbox": list(self.bbox),
                "probability": round(self.probability, 4), "runner_up": self.runner_up,
                "runner_up_probability": round(self.runner_up_probability, 4)}


def region_alternatives(scores: PhotoScores, labels: np.ndarray, min_area: int = 1,
                        include_background: bool = False) -> list[RegionAlternative]:
    """Every region of a class in `labels` (8-connected, as `drafted_region` finds it) of at least
    `min_area` pixels, largest first, with its class's and its runner-up's mean probability
    ("dress 0.52, skirt 0.41"), averaged over a grid of at most about ALTERNATIVE_SAMPLES of its pixels.
    """
    if labels.shape != scores.size:
        raise ValueError(f"label map {labels.shape} is not the photo's size {scores.size}")
    region_ids = np.zeros(labels.shape, dtype=np.int32)
    found: list[tuple[int, np.ndarray]] = []  # (class id, stats row) in region-id order
    for class_id in np.unique(labels):
        if class_id == 0 and not include_background:
            continue
        mask = (labels == class_id).view(np.uint8)
        # Within the class's bounding box: most garments cover a small part of the photo.
        x0, y0, w, h = cv2.boundingRect(mask)
        n, parts, stats, _ = cv2.connectedComponentsWithStats(mask[y0:y0 + h, x0:x0 + w], connectivity=8)
        stats[:, cv2.CC_STAT_LEFT] += x0
        stats[:, cv2.CC_STAT_TOP] += y0
        kept = [part for part in range(1, n) if stats[part, cv2.CC_STAT_AREA] >= min_area]
        renumber = np.zeros(n, dtype=np.int32)  # part -> region id; 0 for the rest and dropped specks
        renumber[kept] = np.arange(len(found) + 1, len(found) + 1 + len(kept))
        found.extend((int(class_id), stats[part]) for part in kept)
        crop = region_ids[y0:y0 + h, x0:x0 + w]
        np.copyto(crop, renumber[parts], where=parts > 0)
    if not found:
        return []
    sums = _probability_sums(scores, region_ids, len(found) + 1)[1:]
    out = []
    for (class_id, stats), class_sums in zip(found, sums):
        area = int(stats[cv2.CC_STAT_AREA])
        mean = class_sums[:-1] / class_sums[-1]
        rivals = mean.copy()
        rivals[class_id] = -1.0
        runner_up = int(rivals.argmax())
        x, y, w, h = (int(v) for v in stats[:4])
        out.append(RegionAlternative(scores.class_names[class_id], area, (x, y, w, h), float(mean[class_id]),
                                     scores.class_names[runner_up], float(mean[runner_up])))
    out.sort(key=lambda r: -r.area)
    return out


def _probability_sums(scores: PhotoScores, region_ids: np.ndarray, n: int) -> np.ndarray:
    """(n, C + 1): per region id, the summed class probabilities over its sampled pixels, and their count.

    A grid of about ALTERNATIVE_SAMPLES pixels (every pixel up to that many, every other pixel of every
    other row of a CCP photo) keeps the cost and memory of a draft's alternatives flat in the photo's size;
    a region no grid pixel falls in (a speck, a thin line between grid rows) is taken at all its pixels.
    """
    step = max(1, math.ceil(math.sqrt(region_ids.size / ALTERNATIVE_SAMPLES)))
    sampled = region_ids[::step, ::step]
    inside = sampled > 0
    ids, probs = sampled[inside], scores.probabilities_on_grid(step)[:, inside]
    sums = _sums(ids, probs, n)
    missed = np.flatnonzero(sums[1:, -1] == 0) + 1
    if missed.size:
        ys, xs = np.nonzero(np.isin(region_ids, missed))
        sums += _sums(region_ids[ys, xs], scores.probabilities_at(ys, xs), n)
    return sums


def _sums(ids: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    columns = [np.bincount(ids, weights=p, minlength=n) for p in probs]
    return np.stack([*columns, np.bincount(ids, minlength=n).astype(np.float64)], axis=1)


def component_at(mask: np.ndarray, x: int, y: int, connectivity: int = 4) -> np.ndarray:
    """(H, W) bool: the connected part of `mask` that holds pixel (x, y) (empty if it is not set)."""
    if not mask[y, x]:
        return np.zeros(mask.shape, dtype=bool)
    image = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).astype(np.uint8)
    filled = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
    flags = connectivity | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(image, filled, (int(x), int(y)), 0, 0, 0, flags)
    return filled[1:-1, 1:-1].view(bool)


def drafted_region(labels: np.ndarray, x: int, y: int) -> np.ndarray:
    """(H, W) bool: the region of `labels` under (x, y), as `region_alternatives` lists it."""
    return component_at(labels == labels[y, x], x, y, connectivity=8)


def components_touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """(H, W) bool: the 4-connected parts of `mask` that hold at least one `seeds` pixel."""
    n, parts = cv2.connectedComponents(mask.view(np.uint8) if mask.dtype == bool else (mask != 0).astype(np.uint8),
                                       connectivity=4)
    hit = np.zeros(n, dtype=bool)
    hit[np.unique(parts[seeds & mask])] = True
    hit[0] = False
    return hit[parts]


def distance_to(seed: np.ndarray) -> np.ndarray:
    """(H, W) float32: each pixel's Euclidean distance to the nearest seed pixel (5x5 chamfer, within 2%).

    Not DIST_MASK_PRECISE: that one differs from call to call in the last bits, and a replay of the same
    edits must give the same labels.
    """
    return cv2.distanceTransform((~seed).view(np.uint8), cv2.DIST_L2, 5)


class RefineCache:
    """What refines need, kept per key (photo content hash, model version): least recently used out
    first past `max_entries` or `max_bytes`, and dropped `ttl_s` after its last use. Thread-safe.
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 512 << 20, ttl_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic):
        self.max_entries, self.max_bytes, self.ttl_s, self.clock = max_entries, max_bytes, ttl_s, clock
        self._items: OrderedDict[Hashable, tuple[PhotoScores, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._items)

    def get(self, key: Hashable) -> PhotoScores | None:
        with self._lock:
            now = self.clock()
            self._expire(now)
            item = self._items.get(key)
            if item is None:
                return None
            self._items[key] = (item[0], now)
            self._items.move_to_end(key)
            return item[0]

    def keys(self) -> list[Hashable]:
        """The keys kept now, least recently used first."""
        with self._lock:
            self._expire(self.clock())
            return list(self._items)

    def put(self, key: Hashable, scores: PhotoScores) -> bool:
        """Keep `scores` under `key`; False (and nothing kept) when it alone exceeds max_bytes."""
        with self._lock:
            self._drop(key)
            if scores.nbytes > self.max_bytes or self.max_entries < 1:
                return False
            self._items[key] = (scores, self.clock())
            self.nbytes += scores.nbytes
            while len(self._items) > self.max_entries or self.nbytes > self.max_bytes:
                self._drop(next(iter(self._items)))
            return True

    def _expire(self, now: float) -> None:
        for key in [k for k, (_, used) in self._items.items() if now - used > self.ttl_s]:
            self._drop(key)

    def _drop(self, key: Hashable) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.nbytes -= item[0].nbytes


def _axis(n_out: int, n_in: int, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv2's INTER_LINEAR sampling along one axis at output pixels `at`: the two source indices and the
    second one's weight (pixel centres map as src = (dst + 0.5) * n_in / n_out - 0.5, clamped)."""
    src = np.clip((np.asarray(at, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    first = np.floor(src).astype(np.intp)
    return first, np.minimum(first + 1, n_in - 1), (src - first).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the first axis (classes), in place."""
    logits -= logits.max(axis=0)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0)
    return logits


def _upsample(channels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if channels.shape[:2] == size:
        return channels.copy()
    return cv2.resize(channels, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
