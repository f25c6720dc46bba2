"""QA checks on a corrected label map: each is named, explained in one sentence and returns Flags.
Flags carry the flagged pixels (cropped to their bbox) so a reviewer sees a small overlay of exactly
what was found; run_checks runs what the given inputs allow, checklist sums the result per image.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from models.taxonomy import Taxonomy, load_taxonomy
from service.drafting.label_maps import Parts, check_map, check_same_shape, parts
from service.drafting.left_right import CENTRE, local_midline, paired_parts, side_of
from service.review.checklist import CHECK_NAMES, batch_checklist, checklist
from service.review.flags import Flag, flag_overlay_png, mask_flag, part_flag
from service.thresholds import QAThresholds

__all__ = ["CHECKS", "Check", "Flag", "batch_checklist", "checklist", "disagreement", "empty_margins",
           "flag_overlay_png", "islands", "left_right", "missing_classes", "overlaps", "run_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    fn: Callable[..., list[Flag]]


def _big(p: Parts, min_area: int) -> np.ndarray:
    """Part indices (never 0, the outside) with at least `min_area` px."""
    idx = np.flatnonzero(p.areas >= min_area)
    return idx[idx > 0]


def empty_margins(correction: np.ndarray, tax: Taxonomy, thr: QAThresholds) -> list[Flag]:
    """Background a small closing of the foreground fills, or small holes off the border, next to garments."""
    lm = check_map(correction, "correction")
    fg = (lm != 0).astype(np.uint8)
    r = int(np.ceil(thr.margin_max_width_px / 2))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    # Thin gaps: background a small closing of the foreground would fill (never wider than the kernel).
    thin = (cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel) > 0) & (fg == 0)
    # Small holes: background parts off the image border, whatever their width (an unpainted patch).
    bg = parts(fg == 0)
    touches = np.zeros(bg.count + 1, dtype=bool)
    touches[np.unique(np.concatenate([bg.labels[0], bg.labels[-1], bg.labels[:, 0], bg.labels[:, -1]]))] = True
    enclosed_ok = ~touches & (bg.areas <= thr.margin_enclosed_max_area_px)
    enclosed_ok[0] = False
    cand = parts(thin | enclosed_ok[bg.labels])
    flags = []
    h, w = lm.shape
    for i in _big(cand, thr.margin_min_area_px):
        x0, y0, x1, y1 = cand.bboxes[i]
        x0, y0, x1, y1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, w), min(y1 + 1, h)
        sliver = cand.labels[y0:y1, x0:x1] == i
        ring = cv2.dilate(sliver.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        around = np.unique(lm[y0:y1, x0:x1][ring & ~sliver])
        garments = [tax.names[c] for c in around if c != 0 and c < tax.num_classes]
        bx0, by0, bx1, by1 = cand.bboxes[i]
        at_border = bx0 == 0 or by0 == 0 or bx1 == w or by1 == h
        enclosed = 0 not in around and not at_border  # surrounded by garments on every side
        if len(garments) < 2 and not enclosed:
            continue  # a notch in one garment's outline, not a gap between garments
        where = "enclosed by" if enclosed else "between"
        flags.append(part_flag("empty_margins", garments, f"{cand.areas[i]} unlabeled px {where} "
                                f"{', '.join(garments)}", cand, i, "warning"))
    return flags


def islands(correction: np.ndarray, tax: Taxonomy, thr: QAThresholds) -> list[Flag]:
    """Parts of a class below island_min_area_px, or below island_min_fraction of its largest part."""
    lm = check_map(correction, "correction")
    flags = []
    for c in np.unique(lm):
        if c == 0 or c >= tax.num_classes:
            continue
        p: Parts = parts(lm == c)
        if p.count < 2:
            continue  # a single part is the class itself, however small
        biggest = p.areas[1:].max()
        small = (p.areas < thr.island_min_area_px) | (p.areas < thr.island_min_fraction * biggest)
        small[0] = False
        name = tax.names[c]
        for i in np.flatnonzero(small):
            flags.append(part_flag("islands", [name], f"stray {name} fragment of {p.areas[i]} px (largest "
                                    f"part {biggest} px)", p, i, "warning"))
    return flags


def overlaps(layers: Mapping[str | int, np.ndarray], tax: Taxonomy, thr: QAThresholds) -> list[Flag]:
    """Connected areas claimed by 2+ of the per-class layers ({class name or id: bool mask})."""
    if not layers:
        return []
    names = [tax.names[k] if isinstance(k, (int, np.integer)) else str(k) for k in layers]
    stack = [np.asarray(m).astype(bool) for m in layers.values()]
    for n, m in zip(names, stack):
        check_same_shape(stack[0], m, f"layer {n!r}")
    count = np.sum(stack, axis=0, dtype=np.int32)
    p = parts(count >= 2)
    flags = []
    if p.count == 0:
        return flags
    # Which layers claim each overlap part: one bincount per layer, not one scan per part.
    claims = np.stack([np.bincount(p.labels[m], minlength=p.count + 1) > 0 for m in stack])
    for i in _big(p, thr.overlap_min_area_px):
        who = [n for n, hit in zip(names, claims[:, i]) if hit]
        flags.append(part_flag("overlaps", who, f"{p.areas[i]} px claimed by {' and '.join(who)}", p, i, "error"))
    return flags


def missing_classes(correction: np.ndarray, draft: np.ndarray, confidence: np.ndarray | None, tax: Taxonomy,
                    thr: QAThresholds) -> list[Flag]:
    """Draft classes with enough confident pixels that the correction lacks; no confidence = all sure."""
    conf = np.ones(draft.shape, np.float32) if confidence is None else confidence
    present = np.bincount(correction.ravel(), minlength=256) > 0
    confident = conf >= thr.missing_min_confidence
    flags = []
    for c in np.unique(draft):
        if c == 0 or present[c] or c >= tax.num_classes:
            continue
        region = draft == c
        sure = region & confident
        if sure.sum() < thr.missing_min_area_px:
            continue
        name = tax.names[c]
        how = "" if confidence is None else f" ({int(sure.sum())} px at confidence >= {thr.missing_min_confidence})"
        flags.append(mask_flag("missing_classes", [name], f"the draft has {name} over {int(region.sum())} px{how} "
                               "but the correction has none", region, "error"))
    return flags


def disagreement(correction: np.ndarray, draft: np.ndarray, confidence: np.ndarray | None, tax: Taxonomy,
                 thr: QAThresholds) -> list[Flag]:
    """Connected confident regions per (draft class, correction class) pair where the two differ."""
    conf = np.ones(draft.shape, np.float32) if confidence is None else confidence
    differ = (draft != correction) & (conf >= thr.disagreement_min_confidence)
    if not thr.disagreement_include_background:
        differ &= (draft != 0) & (correction != 0)
    pair = draft.astype(np.int32) * 256 + correction
    flags = []
    for code in np.unique(pair[differ]):
        d, c = divmod(int(code), 256)
        if max(d, c) >= tax.num_classes:
            continue
        p = parts(differ & (pair == code))
        for i in _big(p, thr.disagreement_min_area_px):
            x0, y0, x1, y1 = p.bboxes[i]
            mean = float(conf[y0:y1, x0:x1][p.labels[y0:y1, x0:x1] == i].mean())
            flags.append(part_flag("disagreement", [tax.names[d], tax.names[c]],
                                    f"the draft says {tax.names[d]} (mean confidence {mean:.2f}) where the "
                                    f"correction says {tax.names[c]}: {p.areas[i]} px", p, i, "warning"))
    return flags


def left_right(correction: np.ndarray, tax: Taxonomy, thr: QAThresholds) -> list[Flag]:
    """Paired classes with 3+ significant parts, or whose two largest parts sit on one side of the body."""
    lm = check_map(correction, "correction")
    flags = []
    for name, found in paired_parts(lm, tax, thr).items():
        mask = lm == tax.class_id(name)
        if len(found) > 2:
            flags.append(mask_flag("left_right", [name], f"{name} has {len(found)} separate parts; a pair has at "
                                   "most two", _within(mask, found), "warning"))
        pair = [prt for prt in found[:2] if not prt.straddles]
        if len(pair) == 2:
            # Sides against the body's extent in the parts' own rows (feet, ankles, legs), not the torso's
            # axis: a walking or leaning person has both feet off that axis, yet one each side of the legs.
            y0, y1 = min(p.bbox[1] for p in pair), max(p.bbox[3] for p in pair)
            mid = local_midline(lm, tax, y0, y1, thr)
            sides = {side_of(p.centroid[0], mid, thr) for p in pair}
            if len(sides) == 1 and CENTRE not in sides:
                flags.append(mask_flag("left_right", [name], f"both {name} parts lie on the person's "
                                       f"{sides.pop()} side", _within(mask, pair), "warning"))
    return flags


def _within(mask: np.ndarray, found) -> np.ndarray:
    region = np.zeros_like(mask)
    for prt in found:
        x0, y0, x1, y1 = prt.bbox
        region[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    return region


CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("empty_margins", "Unlabeled background slivers between garments, or small holes enclosed by them.",
          empty_margins),
    Check("islands", "Tiny disconnected fragments of a class, far smaller than its main part.", islands),
    Check("overlaps", "Pixels claimed by two or more per-class layers of the delivered annotation.", overlaps),
    Check("missing_classes", "Classes the draft shows with high confidence over a sizeable area that the "
          "correction dropped entirely.", missing_classes),
    Check("disagreement", "Sizeable regions where the confident draft names a different garment than the "
          "correction (e.g. pants vs legwear).", disagreement),
    Check("left_right", "Paired classes (pants, legwear, socks, shoes) with more than two parts, or two parts "
          "on the same side of the person.", left_right),
)}
assert tuple(CHECKS) == CHECK_NAMES  # the checklist's lines and the checks must not drift apart


@lru_cache(maxsize=4)
def _taxonomy(name: str) -> Taxonomy:
    return load_taxonomy(name)


def run_checks(correction: np.ndarray, draft: np.ndarray | None = None, confidence: np.ndarray | None = None,
               layers: Mapping[str | int, np.ndarray] | None = None, thresholds: QAThresholds = QAThresholds(),
               taxonomy: Taxonomy | None = None) -> list[Flag]:
    """Every check the inputs allow: draft-based ones need `draft`, overlaps needs `layers`."""
    tax = taxonomy or _taxonomy("fashion-13")
    lm = check_map(correction, "correction")
    flags = empty_margins(lm, tax, thresholds) + islands(lm, tax, thresholds) + left_right(lm, tax, thresholds)
    if layers:
        flags += overlaps(layers, tax, thresholds)
    if draft is not None:
        d = check_map(draft, "draft")
        check_same_shape(lm, d, "draft")
        conf = None
        if confidence is not None:
            conf = np.asarray(confidence, dtype=np.float32)
            check_same_shape(lm, conf, "confidence")
        flags += missing_classes(lm, d, conf, tax, thresholds) + disagreement(lm, d, conf, tax, thresholds)
    return flags
