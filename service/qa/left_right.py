"""Split paired classes (pants, legwear, socks, shoes) into the PERSON's left and right parts.
Sides are the person's own, facing the camera: the person's LEFT appears on the IMAGE's RIGHT (larger x),
their RIGHT on the image's left. Pure numpy/cv2; the extended class list serves every output format.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.qa.measures import check_map, parts
from service.qa.settings import QAThresholds
from training.taxonomy import Taxonomy, TaxonomyClass, load_taxonomy

LEFT, RIGHT, CENTRE = "left", "right", "centre"


@dataclass(frozen=True)
class SplitClasses:
    """A taxonomy with every paired class replaced by `<name>_left`, `<name>_right` (in that order)."""
    taxonomy: Taxonomy                   # the extended taxonomy, e.g. "fashion-13-lr"; no source mappings
    lut: np.ndarray                      # (256,) old id -> new id; a paired class maps to its _left id
    right_of: dict[int, int]             # old paired id -> new _right id (lut gives the _left one)
    base_of: tuple[int, ...]             # new id -> old id
    side_of: tuple[str | None, ...]      # new id -> "left" / "right" / None

    @property
    def names(self) -> list[str]:
        return self.taxonomy.names

    def palette(self) -> np.ndarray:
        return self.taxonomy.palette()


def split_taxonomy(tax: Taxonomy) -> SplitClasses:
    """Extend `tax`: paired classes become _left (original colour) and _right (colour lightened 45 %)."""
    classes: list[TaxonomyClass] = []
    base: list[int] = []
    side: list[str | None] = []
    used = {c.color for c in tax.classes}

    def add(name: str, color: tuple[int, int, int], base_id: int, which: str | None) -> int:
        classes.append(TaxonomyClass(len(classes), name, color, False))
        base.append(base_id)
        side.append(which)
        return len(classes) - 1

    lut = np.zeros(256, dtype=np.int64)
    right_of = {}
    for c in tax.classes:
        if not c.paired:
            lut[c.id] = add(c.name, c.color, c.id, None)
        else:
            lut[c.id] = add(f"{c.name}_left", c.color, c.id, LEFT)
            right_of[c.id] = add(f"{c.name}_right", _distinct_tint(c.color, used), c.id, RIGHT)
    if len(classes) > 255:
        raise ValueError(f"splitting {tax.tag} gives {len(classes)} classes; label maps hold at most 255")
    ext = Taxonomy(f"{tax.name}-lr", tax.version, tuple(classes), {}, f"{tax.description} (paired classes split "
                   "into the person's left and right; the person's left is on the image's right)".strip())
    return SplitClasses(ext, lut.astype(np.uint8), right_of, tuple(base), tuple(side))


def _distinct_tint(color: tuple[int, int, int], used: set) -> tuple[int, int, int]:
    # Lighter than the left colour so the pair reads as one garment; nudged if it collides with another.
    for mix in (0.45, 0.3, 0.6, 0.2, 0.7):
        tint = tuple(int(round(v + (255 - v) * mix)) for v in color)
        if tint not in used:
            used.add(tint)
            return tint
    raise ValueError(f"cannot find a distinct right-side colour for {color}")


def body_midline(label_map: np.ndarray, tax: Taxonomy, thr: QAThresholds = QAThresholds()) -> float:
    """Column (x, float) of the person's vertical midline.

    Taken as the median of per-row median columns of the body in its top `lr_midline_upper_fraction`
    (head and torso): a per-row median ignores one raised arm, the median over rows ignores the odd row.
    Carried things (bag, accessory) and the paired classes themselves are left out, since legs may be
    spread or hidden. Falls back to all foreground, then to the image centre.
    """
    lm = check_map(label_map)
    skip = {tax.class_id(n) for n in thr.lr_midline_exclude if n in tax.names}
    skip |= {c.id for c in tax.classes if c.paired} | {0}
    keep = np.ones(256, dtype=bool)
    keep[list(skip)] = False
    fg = lm != 0
    body = keep[lm]
    if body.sum() < 10:
        body = fg
    if not body.any():
        return (lm.shape[1] - 1) / 2.0
    rows = np.flatnonzero(fg.any(axis=1))
    top = rows[0] + thr.lr_midline_upper_fraction * (rows[-1] - rows[0])
    counts = body.sum(axis=1)
    use = (counts >= 3) & (np.arange(lm.shape[0]) <= top)
    if not use.any():
        use = counts > 0
    sub, n = body[use], counts[use]
    # Per-row median column without a Python loop: first column where the running count passes half.
    median_col = np.argmax(np.cumsum(sub, axis=1) > (n // 2)[:, None], axis=1)
    return float(np.median(median_col))


def local_midline(label_map: np.ndarray, tax: Taxonomy, y0: int, y1: int,
                  thr: QAThresholds = QAThresholds()) -> float:
    """Centre of the body's extent within rows y0..y1: midpoint of the 10th and 90th percentile columns
    of everything but carried things (percentiles, so a stray hand or strap does not move it)."""
    lm = check_map(label_map)
    keep = np.ones(256, dtype=bool)
    keep[[0] + [tax.class_id(n) for n in thr.lr_midline_exclude if n in tax.names]] = False
    xs = np.nonzero(keep[lm[max(y0, 0):y1]])[1]
    if xs.size == 0:
        return body_midline(lm, tax, thr)
    lo, hi = np.percentile(xs, [10, 90])
    return float(lo + hi) / 2


def side_of(x: float, midline: float, thr: QAThresholds = QAThresholds()) -> str:
    """The person's side of column x: image-right (x > midline) is the person's LEFT."""
    if abs(x - midline) <= thr.lr_side_tolerance_px:
        return CENTRE
    return LEFT if x > midline else RIGHT


@dataclass(frozen=True)
class Part:
    """One significant connected part of a paired class, sided against the body midline."""
    class_name: str
    area: int
    bbox: tuple[int, int, int, int]   # x0, y0, x1, y1 (exclusive ends)
    centroid: tuple[float, float]     # x, y
    side: str                         # "left" / "right" (the person's) or "centre" (within tolerance)
    straddles: bool                   # both sides of the midline hold enough of it (touching limbs)


def paired_parts(label_map: np.ndarray, tax: Taxonomy, thr: QAThresholds = QAThresholds(),
                 midline: float | None = None) -> dict[str, list[Part]]:
    """Significant parts of each paired class present, largest first, each with its side of the body."""
    lm = check_map(label_map)
    mid = body_midline(lm, tax, thr) if midline is None else midline
    out: dict[str, list[Part]] = {}
    for c in (c for c in tax.classes if c.paired):
        mask = lm == c.id
        if not mask.any():
            continue
        p = parts(mask)
        sig = _significant(p.areas, thr)
        found = []
        for i in sorted(sig, key=lambda i: -p.areas[i]):
            cx, cy = p.centroids[i]
            found.append(Part(c.name, int(p.areas[i]), tuple(int(v) for v in p.bboxes[i]), (float(cx), float(cy)),
                              side_of(cx, mid, thr), _straddles(p.labels == i, mid, thr)))
        out[c.name] = found
    return out


def _significant(areas: np.ndarray, thr: QAThresholds) -> np.ndarray:
    if len(areas) <= 1:
        return np.zeros(0, dtype=int)
    floor = max(thr.lr_min_part_area_px, thr.lr_min_part_fraction * areas[1:].max())
    sig = np.flatnonzero(areas >= floor)
    return sig[sig > 0]


def _straddles(mask: np.ndarray, split_x: float, thr: QAThresholds) -> bool:
    xs = np.nonzero(mask)[1]
    right_image = float((xs >= split_x).mean()) if xs.size else 0.0
    return min(right_image, 1 - right_image) >= thr.lr_split_min_side_fraction


def _split_x(p, sig: np.ndarray, midline: float, thr: QAThresholds) -> float:
    """Where this class divides: the widest gap between significant parts' centroids if it is clear,
    so two feet placed off the body's axis are still told apart by their relative position; otherwise
    (one part, or parts stacked above each other) the body midline."""
    cx = np.sort(p.centroids[sig, 0])
    if len(cx) >= 2:
        gaps = np.diff(cx)
        k = int(np.argmax(gaps))
        if gaps[k] >= thr.lr_min_separation_px:
            return float((cx[k] + cx[k + 1]) / 2)
    return midline


def _cut_rows(mask: np.ndarray, split_x: float, snap: int) -> np.ndarray:
    """Image-right (= person's left) pixels of one part holding two touching limbs, cut row by row.

    Each row is cut at the background gap inside the part nearest the split column (within `snap` px),
    so the cut follows the visible gap between legs; rows with no such gap (legs pressed together, the
    seat of the pants) take the cut interpolated from the nearest gap rows, or the split column if none.
    """
    h, w = mask.shape
    cols = np.arange(w)
    inside_l = np.maximum.accumulate(mask, axis=1)
    inside_r = np.maximum.accumulate(mask[:, ::-1], axis=1)[:, ::-1]
    gap = inside_l & inside_r & ~mask & (np.abs(cols - split_x) <= snap)[None, :]
    dist = np.where(gap, np.abs(cols - split_x)[None, :], np.inf)
    best = np.argmin(dist, axis=1)
    has_gap = np.isfinite(dist[np.arange(h), best])
    rows = np.arange(h)
    cut = np.interp(rows, rows[has_gap], best[has_gap]) if has_gap.any() else np.full(h, split_x)
    return mask & (cols[None, :] >= cut[:, None])


def side_masks(mask: np.ndarray, midline: float,
               thr: QAThresholds = QAThresholds()) -> tuple[np.ndarray, np.ndarray]:
    """(person's left, person's right) pixels of one paired class's binary mask."""
    mask = mask.astype(bool)
    left = np.zeros_like(mask)
    p = parts(mask)
    sig = _significant(p.areas, thr)
    if p.count == 0:
        return left, mask.copy()
    if sig.size == 0:  # only fragments: each goes by its own centroid
        sig = np.arange(1, p.count + 1)
    split_x = _split_x(p, sig, midline, thr)
    part_side = np.zeros(p.count + 1, dtype=np.int8)  # +1 person's left, -1 right, 2 cut per row
    for i in sig:
        x0, y0, x1, y1 = p.bboxes[i]
        part = p.labels[y0:y1, x0:x1] == i  # the part's own box: cheap, and shifts the split column by x0
        if _straddles(part, split_x - x0, thr):
            part_side[i] = 2
            left[y0:y1, x0:x1] |= _cut_rows(part, split_x - x0, thr.lr_gap_snap_px)
        else:
            part_side[i] = 1 if p.centroids[i, 0] > split_x else -1
    frag = np.setdiff1d(np.arange(1, p.count + 1), sig)
    if frag.size:
        # A fragment follows the nearest significant part; next to a cut part it goes by the split column.
        d = np.linalg.norm(p.centroids[frag][:, None, :] - p.centroids[sig][None, :, :], axis=2)
        nearest = part_side[sig[np.argmin(d, axis=1)]]
        by_x = np.where(p.centroids[frag, 0] > split_x, 1, -1)
        part_side[frag] = np.where(nearest == 2, by_x, nearest)
    left |= (part_side == 1)[p.labels] & mask
    return left, mask & ~left


@dataclass
class LRSplit:
    label_map: np.ndarray          # (H, W) uint8 ids of `classes.taxonomy`
    classes: SplitClasses
    midline: float                 # body midline column used
    pixels: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> {"left": px, "right": px}

    @property
    def names(self) -> list[str]:
        return self.classes.names


def split_left_right(label_map: np.ndarray, tax: Taxonomy | None = None,
                     thr: QAThresholds = QAThresholds()) -> LRSplit:
    """Extended label map where each paired class is split into the person's left and right parts."""
    tax = tax or load_taxonomy()
    lm = check_map(label_map)
    if int(lm.max()) >= tax.num_classes:
        raise ValueError(f"label map has id {int(lm.max())}; taxonomy {tax.tag} has {tax.num_classes} classes")
    classes = split_taxonomy(tax)
    mid = body_midline(lm, tax, thr)
    out = classes.lut[lm]
    pixels = {}
    for cid, rid in classes.right_of.items():
        mask = lm == cid
        if not mask.any():
            continue
        left, right = side_masks(mask, mid, thr)
        out[right] = rid
        pixels[tax.classes[cid].name] = {LEFT: int(left.sum()), RIGHT: int(right.sum())}
    return LRSplit(out, classes, mid, pixels)
