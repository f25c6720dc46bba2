"""Split paired classes (pants, legwear, socks, shoes) into the PERSON's left and right parts.
Sides are the person's own, facing the camera: the person's LEFT appears on the IMAGE's RIGHT (larger x),
their RIGHT on the image's left. Pure numpy/cv2; the extended class list serves every output format.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from models.taxonomy import Taxonomy, load_taxonomy
from service.drafting.label_maps import check_map, parts
from service.drafting.left_right_classes import LEFT, RIGHT, SplitClasses, split_taxonomy
from service.thresholds import QAThresholds

CENTRE = "centre"
__all__ = ["LEFT", "RIGHT", "CENTRE", "SplitClasses", "split_taxonomy", "body_midline", "local_midline",
           "side_of", "Part", "paired_parts", "gap_column", "side_masks", "LRSplit", "split_left_right"]


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
                  thr: QAThresholds = QAThresholds(), skip: tuple[int, ...] = ()) -> float:
    """Centre of the body's extent within rows y0..y1: midpoint of the 10th and 90th percentile columns
    of everything but carried things and the class ids in `skip` (percentiles, so a stray hand or strap
    does not move it). Falls back to the body midline when nothing is left in those rows."""
    lm = check_map(label_map)
    keep = np.ones(256, dtype=bool)
    keep[[0, *skip] + [tax.class_id(n) for n in thr.lr_midline_exclude if n in tax.names]] = False
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


def _interior_gaps(mask: np.ndarray) -> np.ndarray:
    """Background pixels with the mask both to their left and right in the same row (between legs)."""
    inside_l = np.maximum.accumulate(mask, axis=1)
    inside_r = np.maximum.accumulate(mask[:, ::-1], axis=1)[:, ::-1]
    return inside_l & inside_r & ~mask


def gap_column(part: np.ndarray, thr: QAThresholds = QAThresholds()) -> float | None:
    """Median column of the gaps inside a part when enough of its rows have one: legs apart below the
    knee, or feet apart at the heels, show two limbs even where they touch elsewhere. None otherwise."""
    gap = _interior_gaps(part)
    rows = gap.any(axis=1)
    if rows.sum() < thr.lr_two_limb_gap_rows * part.any(axis=1).sum():
        return None
    per_row = [np.flatnonzero(g).mean() for g in gap[rows]]
    return float(np.median(per_row))


def _cut_rows(mask: np.ndarray, split_x: float, snap: int) -> np.ndarray:
    """Image-right (= person's left) pixels of one part holding two touching limbs, cut row by row.

    Each row is cut at the background gap inside the part nearest the split column (within `snap` px),
    so the cut follows the visible gap between legs; rows with no such gap (legs pressed together, the
    seat of the pants) take the cut interpolated from the nearest gap rows, or the split column if none.
    """
    h, w = mask.shape
    cols = np.arange(w)
    gap = _interior_gaps(mask) & (np.abs(cols - split_x) <= snap)[None, :]
    dist = np.where(gap, np.abs(cols - split_x)[None, :], np.inf)
    best = np.argmin(dist, axis=1)
    has_gap = np.isfinite(dist[np.arange(h), best])
    rows = np.arange(h)
    cut = np.interp(rows, rows[has_gap], best[has_gap]) if has_gap.any() else np.full(h, split_x)
    return mask & (cols[None, :] >= cut[:, None])


def side_masks(mask: np.ndarray, midline: float, thr: QAThresholds = QAThresholds(),
               centre: Callable[[np.ndarray, int, int], tuple[list[float], float]] | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
    """(person's left, person's right) pixels of one paired class's binary mask.

    When its parts are not clearly apart, `centre(part, x0, y0)` (the part's pixels in its bounding box,
    and the box's corner) gives (columns to cut at, best first; column to side it whole against): the
    part is cut at the first column it straddles, else goes whole. Without `centre`: the midline.
    """
    mask = mask.astype(bool)
    left = np.zeros_like(mask)
    p = parts(mask)
    sig = _significant(p.areas, thr)
    if p.count == 0:
        return left, mask.copy()
    if sig.size == 0:  # only fragments: each goes by its own centroid
        sig = np.arange(1, p.count + 1)
    split_x = _split_x(p, sig, np.nan, thr)  # NaN: parts not clearly apart, each is judged on its own
    part_side = np.zeros(p.count + 1, dtype=np.int8)  # +1 person's left, -1 right, 2 cut per row
    part_x = np.full(p.count + 1, split_x)             # the column each part was sided or cut against
    for i in sig:
        x0, y0, x1, y1 = p.bboxes[i]
        part = p.labels[y0:y1, x0:x1] == i  # the part's own box: cheap, and shifts the split column by x0
        if np.isnan(split_x):
            # No clear gap between parts: the part is sided against the body around it, not the torso's
            # axis, which a leaning or twisting person carries well off their legs and feet.
            cuts, whole = ([midline], midline) if centre is None else centre(part, int(x0), int(y0))
            part_x[i] = next((x for x in cuts if _straddles(part, x - x0, thr)), whole)
        if _straddles(part, part_x[i] - x0, thr):
            part_side[i] = 2
            left[y0:y1, x0:x1] |= _cut_rows(part, part_x[i] - x0, thr.lr_gap_snap_px)
        else:
            part_side[i] = 1 if p.centroids[i, 0] > part_x[i] else -1
    frag = np.setdiff1d(np.arange(1, p.count + 1), sig)
    if frag.size:
        # A fragment follows the nearest significant part; next to a cut part it goes by the split column.
        d = np.linalg.norm(p.centroids[frag][:, None, :] - p.centroids[sig][None, :, :], axis=2)
        near = sig[np.argmin(d, axis=1)]
        nearest = part_side[near]
        by_x = np.where(p.centroids[frag, 0] > part_x[near], 1, -1)
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
    """Extended label map where each paired class is split into the person's left and right parts.

    Parts of a class clearly apart (two shoes) are told apart by their relative position. A lone part is
    judged against what surrounds it: a sock or shoe under two sided legs is cut between them; a part
    with a gap inside it (feet apart at the heels, legs below the knee) is cut through the gap; a foot
    under one leg follows it whole; otherwise a part straddling the centre of the rest of the body around
    it is cut there (touching legs), and one that does not goes whole to its side (the other limb hidden).
    """
    tax = tax or load_taxonomy()
    lm = check_map(label_map)
    if int(lm.max()) >= tax.num_classes:
        raise ValueError(f"label map has id {int(lm.max())}; taxonomy {tax.tag} has {tax.num_classes} classes")
    classes = split_taxonomy(tax)
    mid = body_midline(lm, tax, thr)
    out = classes.lut[lm]
    sided: list[tuple[int, int]] = []  # (left id, right id) of the classes split so far

    def centre(cid: int, part: np.ndarray, x0: int, y0: int) -> tuple[list[float], float]:
        """Where a lone part of class `cid` may be cut (best first), and what sides it if it is not cut."""
        h, w = part.shape
        cuts, whole = [], None
        # Paired classes come top-down in the taxonomy (pants, legwear, socks, shoes), so a sock or shoe
        # finds the leg(s) above it already sided: it is cut between two legs, or follows one leg whole.
        band = out[max(y0 - h // 2, 0): y0 + h // 4 + 1, x0:x0 + w]
        left_px = np.isin(band, [lid for lid, _ in sided])
        right_px = np.isin(band, [rid for _, rid in sided])
        n_left, n_right = int(left_px.sum()), int(right_px.sum())
        if n_left + n_right >= thr.lr_min_part_fraction * part.sum():  # a leg's worth, not a stray pixel
            if min(n_left, n_right) >= thr.lr_follow_min_side_fraction * (n_left + n_right):
                whole = x0 + (np.nonzero(left_px)[1].mean() + np.nonzero(right_px)[1].mean()) / 2
                cuts.append(whole)
            else:
                whole = -np.inf if n_left > n_right else np.inf  # it lies on that one leg's side
        gap = gap_column(part, thr)
        if gap is not None:  # limbs apart somewhere along their length (feet at the heels, legs at the knee)
            cuts.append(x0 + gap)
        if whole is None:
            # The centre of the rest of the body in the part's rows and half its height above (the part
            # itself left out, or a lone limb would always straddle its own centre): a foot beside the
            # middle of a skirt, or a leg under one side of the hips, stays whole.
            whole = local_midline(lm, tax, y0 - h // 2, y0 + h, thr, skip=(cid,))
            cuts.append(whole)
        return cuts, whole

    pixels = {}
    for cid, rid in classes.right_of.items():
        mask = lm == cid
        if not mask.any():
            continue
        left, right = side_masks(mask, mid, thr, partial(centre, cid))
        out[right] = rid
        sided.append((int(classes.lut[cid]), rid))
        pixels[tax.classes[cid].name] = {LEFT: int(left.sum()), RIGHT: int(right.sum())}
    return LRSplit(out, classes, mid, pixels)
