"""Splitting a worklist: why each drafted image is hard, how long its correction should take, who gets it.
A batch is split between named annotators by greedy longest-processing-time on predicted effort,
so shares take about equally long; each share lists its hardest image first (CSV_COLUMNS: the team's sheet).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.taxonomy import Taxonomy, load_taxonomy
from service.drafting.label_maps import check_map, parts
from service.review.measures import class_name, label_boundary
from service.thresholds import QAThresholds

CSV_COLUMNS = ("image_id", "annotator", "classes_present", "difficulty", "notes", "qa_status")


@dataclass(frozen=True)
class DraftInfo:
    image_id: str
    class_areas: Mapping[str, int]        # px per class in the draft (background, if listed, is ignored)
    image_area: int                       # H * W
    difficulty: float = 0.0               # the engine's score: 1 - mean confidence, 0 (certain) .. 1
    uncertain_fraction: float = 0.0       # share of pixels below the uncertain confidence
    mean_confidence: float | None = None
    small_regions: int = 0                # connected class regions below small_region_area_px
    boundary_px: int = 0                  # approximate length of all class boundaries, px

    def classes(self) -> list[str]:
        """Classes present in the draft, background left out."""
        return [c for c, a in self.class_areas.items() if a > 0 and c != "background"]


def draft_info(image_id: str, draft: np.ndarray, confidence: np.ndarray | None = None,
               taxonomy: Taxonomy | None = None, thresholds: QAThresholds = QAThresholds()) -> DraftInfo:
    """DraftInfo measured from a draft label map and (optionally) its per-pixel confidence."""
    tax = taxonomy or load_taxonomy()
    lm = check_map(draft, "draft")
    counts = np.bincount(lm.ravel(), minlength=256)
    areas = {class_name(tax.names, c): int(counts[c]) for c in np.flatnonzero(counts) if c != 0}
    small = sum(int((parts(lm == c).areas[1:] < thresholds.small_region_area_px).sum())
                for c in np.flatnonzero(counts) if c != 0)
    # The gradient marks both sides of an edge, so half its pixels approximate the edge's length.
    boundary = int(label_boundary(lm).sum()) // 2
    if confidence is None:
        return DraftInfo(image_id, areas, lm.size, small_regions=small, boundary_px=boundary)
    conf = np.asarray(confidence, dtype=np.float32)
    mean = float(conf.mean())
    return DraftInfo(image_id, areas, lm.size, difficulty=1.0 - mean,
                     uncertain_fraction=float((conf < thresholds.uncertain_confidence).mean()),
                     mean_confidence=mean, small_regions=small, boundary_px=boundary)


def predicted_effort_s(info: DraftInfo, thr: QAThresholds = QAThresholds()) -> float:
    """Predicted correction time in seconds; a linear model whose coefficients live in QAThresholds:

        base + per_class * classes + per_uncertain_percent * (100 * uncertain_fraction)
             + per_small_region * small_regions + per_100px_boundary * boundary_px / 100

    e.g. 8 classes, 10 % uncertain, 5 small regions, 4000 px of edges: 20 + 48 + 40 + 15 + 20 = 143 s.
    """
    return (thr.effort_base_s + thr.effort_per_class_s * len(info.classes())
            + thr.effort_per_uncertain_percent_s * 100.0 * info.uncertain_fraction
            + thr.effort_per_small_region_s * info.small_regions
            + thr.effort_per_100px_boundary_s * info.boundary_px / 100.0)


def difficulty_reason(info: DraftInfo, thr: QAThresholds = QAThresholds(),
                      class_frequency: Mapping[str, float] | None = None) -> str:
    """Short human reason: uncertain area, rare classes present, small garments; or that it looks easy.

    `class_frequency` (share of images holding each class, e.g. from the training set) decides rarity;
    without it `thr.rare_classes` does.
    """
    present = info.classes()
    if class_frequency is not None:
        rare = [c for c in present if class_frequency.get(c, 0.0) < thr.rare_frequency]
    else:
        rare = [c for c in present if c in thr.rare_classes]
    small = sorted((a, c) for c, a in info.class_areas.items()
                   if c in present and c not in thr.non_garment_classes
                   and a < thr.small_garment_fraction * info.image_area)
    reasons = []
    if info.uncertain_fraction >= thr.notable_uncertain_fraction:
        reasons.append(f"uncertain {100 * info.uncertain_fraction:.0f}% of pixels")
    if rare:
        reasons.append(f"rare classes: {', '.join(rare)}")
    if small:
        reasons.append("small garments: " + ", ".join(f"{c} ({a} px)" for a, c in small[:3]))
    return "; ".join(reasons) if reasons else "confident draft, common classes"


@dataclass(frozen=True)
class Assignment:
    image_id: str
    annotator: str
    position: int                         # 1 = first in this annotator's share (the hardest)
    predicted_s: float
    difficulty: float
    classes_present: tuple[str, ...]
    notes: str
    qa_status: str = "pending"


def split_batch(infos: Sequence[DraftInfo], annotators: Sequence[str], thresholds: QAThresholds = QAThresholds(),
                class_frequency: Mapping[str, float] | None = None,
                capacity: Mapping[str, float] | None = None) -> list[Assignment]:
    """Split a batch between annotators, balancing predicted effort (greedy longest-processing-time).

    Images are taken longest first and each goes to whoever would finish it earliest, load divided by
    their `capacity` (default 1.0 each: a 2.0 annotator gets about twice the seconds). Ties go to the
    annotator listed first, so the split is deterministic. Each share is then ordered hardest first.
    """
    names = list(dict.fromkeys(annotators))
    if not names:
        raise ValueError("at least one annotator is needed")
    cap = {n: float((capacity or {}).get(n, 1.0)) for n in names}
    if any(v <= 0 for v in cap.values()):
        raise ValueError("annotator capacities must be positive")
    load = dict.fromkeys(names, 0.0)
    est = {i.image_id: predicted_effort_s(i, thresholds) for i in infos}
    shares: dict[str, list[DraftInfo]] = {n: [] for n in names}
    for info in sorted(infos, key=lambda i: (-est[i.image_id], i.image_id)):
        who = min(names, key=lambda n: ((load[n] + est[info.image_id]) / cap[n], names.index(n)))
        load[who] += est[info.image_id]
        shares[who].append(info)
    out = []
    for who in names:
        ordered = sorted(shares[who], key=lambda i: (-i.difficulty, -est[i.image_id], i.image_id))
        for pos, info in enumerate(ordered, 1):
            reason = difficulty_reason(info, thresholds, class_frequency)
            out.append(Assignment(info.image_id, who, pos, round(est[info.image_id], 1), info.difficulty,
                                  tuple(info.classes()), f"{reason}; ~{est[info.image_id]:.0f} s"))
    return out


def share_totals(assignments: Sequence[Assignment]) -> dict[str, dict[str, float]]:
    """{annotator: {"images", "predicted_s"}} to show the split is balanced."""
    totals: dict[str, dict[str, float]] = {}
    for a in assignments:
        t = totals.setdefault(a.annotator, {"images": 0, "predicted_s": 0.0})
        t["images"] += 1
        t["predicted_s"] += a.predicted_s
    return totals
