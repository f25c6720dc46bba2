"""Agreement between two annotators' corrections of the same image, and over a batch of such pairs.
Per-class IoU, boundary F at a small tolerance, overall pixel agreement, and an RGB overlay that
shows where the two differ, over the photo or the colour label map.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from models.taxonomy import Taxonomy, load_taxonomy
from service.drafting.label_maps import check_map, check_same_shape
from service.review.measures import class_name, colorize, compare_maps, summarise
from service.thresholds import QAThresholds

HIGHLIGHT = (255, 0, 255)  # magenta: no class colour in fashion-13 is close to it


@dataclass
class Agreement:
    pixel_agreement: float             # share of pixels both gave the same class
    boundary_f: float                  # overall boundary F of the two label boundaries
    mean_iou: float | None             # over garment classes (not background) either annotator used
    tolerance: float
    class_iou: dict[str, float] = field(default_factory=dict)
    class_boundary_f: dict[str, float] = field(default_factory=dict)
    image_id: str | None = None
    annotators: tuple[str, str] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["annotators"] = list(self.annotators) if self.annotators else None
        return d


def agreement(a: np.ndarray, b: np.ndarray, taxonomy: Taxonomy | None = None, tolerance: float | None = None,
              image_id: str | None = None, annotators: tuple[str, str] | None = None,
              thresholds: QAThresholds = QAThresholds()) -> Agreement:
    """How much two corrections of one image agree; symmetric in a and b (IoU, pixels and F alike)."""
    tax = taxonomy or load_taxonomy()
    tol = thresholds.boundary_tolerance_px if tolerance is None else tolerance
    m = compare_maps(a, b, tol, max(tax.num_classes, int(max(np.max(a), np.max(b))) + 1))
    garments = [v for c, v in m["iou"].items() if c != 0]
    return Agreement(
        pixel_agreement=m["pixel_agreement"], boundary_f=m["boundary_f_overall"],
        mean_iou=float(np.mean(garments)) if garments else None, tolerance=float(tol),
        class_iou={class_name(tax.names, c): v for c, v in m["iou"].items()},
        class_boundary_f={class_name(tax.names, c): v for c, v in m["boundary_f"].items()},
        image_id=image_id, annotators=tuple(annotators) if annotators else None)


def disagreement_overlay(a: np.ndarray, b: np.ndarray, image: np.ndarray | None = None,
                         palette: np.ndarray | None = None, alpha: float = 0.75) -> np.ndarray:
    """(H, W, 3) uint8: where a and b differ, magenta over the base; elsewhere the base, dimmed.

    The base is the photo when given, else annotator a's colour map; dimming the agreed part makes the
    (usually thin) disagreements stand out without hiding what they are next to.
    """
    a, b = check_map(a, "first map"), check_map(b, "second map")
    check_same_shape(a, b, "second map")
    if image is not None:
        base = np.asarray(image)
        if base.ndim == 2:
            base = np.repeat(base[:, :, None], 3, axis=2)
        check_same_shape(a, base, "image")
        base = base[..., :3].astype(np.float32)
    else:
        base = colorize(a, palette).astype(np.float32)
    differ = a != b
    out = base * 0.55
    out[differ] = base[differ] * (1 - alpha) + np.array(HIGHLIGHT, np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def aggregate_agreement(results: Iterable[Agreement | Mapping]) -> dict:
    """Batch means: overall and per class (mean and count), and per annotator pair when known."""
    rows = [r.to_dict() if isinstance(r, Agreement) else dict(r) for r in results]
    keys = ("pixel_agreement", "boundary_f", "mean_iou")
    pairs: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("annotators"):
            pairs.setdefault(" & ".join(sorted(row["annotators"])), []).append(row)
    return {**summarise(rows, keys), "by_pair": {p: summarise(g, keys) for p, g in sorted(pairs.items())}}
