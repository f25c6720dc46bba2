"""Correction effort: how far an annotator had to move the model's draft to reach the final mask.
Changed-pixel fraction, per-class IoU of draft vs final, and boundary F-score at a small tolerance,
per class and overall; aggregate() averages records per model version and per class.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from models.taxonomy import Taxonomy, load_taxonomy
from service.review.measures import class_name, compare_maps, summarise
from service.thresholds import QAThresholds


@dataclass
class Effort:
    changed_px: int
    pixels: int
    changed_fraction: float            # share of pixels whose class the annotator changed
    boundary_f: float                  # overall boundary F of draft vs final label boundaries
    boundary_precision: float          # draft boundary pixels that the final kept (within tolerance)
    boundary_recall: float             # final boundary pixels the draft already had (within tolerance)
    mean_iou: float | None             # over garment classes (not background) in draft or final
    tolerance: float
    class_iou: dict[str, float] = field(default_factory=dict)         # classes in draft or final only
    class_boundary_f: dict[str, float] = field(default_factory=dict)
    image_id: str | None = None
    model_version: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def correction_effort(draft: np.ndarray, final: np.ndarray, taxonomy: Taxonomy | None = None,
                      tolerance: float | None = None, image_id: str | None = None,
                      model_version: str | None = None, thresholds: QAThresholds = QAThresholds()) -> Effort:
    """Effort of turning `draft` into `final` (both (H, W) label maps of the same taxonomy).

    A perfect draft scores changed 0.0, IoU 1.0 and boundary F 1.0 for every class. Tolerance defaults
    to `thresholds.boundary_tolerance_px` (2 px): boundaries a pixel or two apart are the same edge.
    """
    tax = taxonomy or load_taxonomy()
    tol = thresholds.boundary_tolerance_px if tolerance is None else tolerance
    m = compare_maps(draft, final, tol, max(tax.num_classes, int(max(np.max(draft), np.max(final))) + 1))
    iou = {class_name(tax.names, c): v for c, v in m["iou"].items()}
    bf = {class_name(tax.names, c): v for c, v in m["boundary_f"].items()}
    garments = [v for c, v in m["iou"].items() if c != 0]
    return Effort(
        changed_px=m["changed_px"], pixels=m["pixels"], changed_fraction=m["changed_px"] / m["pixels"],
        boundary_f=m["boundary_f_overall"], boundary_precision=m["boundary_precision"],
        boundary_recall=m["boundary_recall"], mean_iou=float(np.mean(garments)) if garments else None,
        tolerance=float(tol), class_iou=iou, class_boundary_f=bf, image_id=image_id, model_version=model_version)


def aggregate(records: Iterable[Effort | Mapping]) -> dict:
    """Mean effort per model version, and per class within each version (mean and count).

    Records are Effort objects or their to_dict() (as stored by the app); a record without a model
    version is grouped under "unknown". A class counts only in images where draft or final has it.
    """
    groups: dict[str, list[dict]] = {}
    for r in records:
        d = r.to_dict() if isinstance(r, Effort) else dict(r)
        groups.setdefault(d.get("model_version") or "unknown", []).append(d)
    keys = ("changed_fraction", "boundary_f", "mean_iou")
    return {version: summarise(rows, keys) for version, rows in sorted(groups.items())}
