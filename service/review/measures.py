"""Shared measures on label maps: validation, connected parts, boundaries, IoU and boundary F-score.
Effort (draft vs final) and agreement (annotator vs annotator) are the same comparisons of two maps,
so both call these; cv2 does the morphology and distance transforms, numpy the counting.
"""
from __future__ import annotations

import cv2
import numpy as np

from models.taxonomy import load_taxonomy
from service.drafting.label_maps import check_map, check_same_shape

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary of a binary mask: its morphological gradient (3x3 cross), one pixel each side of the edge.

    The image border is not a boundary: cv2's default border handling leaves it neutral.
    """
    m = mask.astype(np.uint8)
    return cv2.morphologyEx(m, cv2.MORPH_GRADIENT, _CROSS) > 0


def label_boundary(label_map: np.ndarray) -> np.ndarray:
    """Pixels next to a change of class anywhere in the label map (gradient of the ids themselves)."""
    return cv2.morphologyEx(label_map, cv2.MORPH_GRADIENT, _CROSS) > 0


def _near(b: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within `tolerance` (Euclidean px) of any True pixel of b."""
    if not b.any():
        return np.zeros_like(b)
    dist = cv2.distanceTransform((~b).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist <= tolerance


def boundary_f(b_pred: np.ndarray, b_ref: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """(precision, recall, F) of boundary maps matched within `tolerance` px; two empty boundaries agree."""
    n_pred, n_ref = int(b_pred.sum()), int(b_ref.sum())
    if n_pred == 0 and n_ref == 0:
        return 1.0, 1.0, 1.0
    if n_pred == 0 or n_ref == 0:
        return (1.0 if n_pred == 0 else 0.0), (1.0 if n_ref == 0 else 0.0), 0.0
    precision = float((b_pred & _near(b_ref, tolerance)).sum()) / n_pred
    recall = float((b_ref & _near(b_pred, tolerance)).sum()) / n_ref
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f


def compare_maps(a: np.ndarray, b: np.ndarray, tolerance: float, num_classes: int | None = None) -> dict:
    """Pixel agreement, per-class IoU and boundary F, and overall boundary F of two label maps.

    Classes absent from both maps are left out (their IoU is undefined, not 1.0). Work per class is
    restricted to the union bounding box (plus tolerance), so small garments cost little.
    """
    a, b = check_map(a, "first map"), check_map(b, "second map")
    check_same_shape(a, b, "second map")
    n = num_classes or int(max(a.max(), b.max())) + 1
    both = a.astype(np.int64) * n + b
    confusion = np.bincount(both.ravel(), minlength=n * n).reshape(n, n)  # rows: a, cols: b
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    iou, bf = {}, {}
    pad = int(np.ceil(tolerance)) + 2
    for c in np.flatnonzero(union):
        ys, xs = np.nonzero((a == c) | (b == c))
        y0, y1 = max(ys.min() - pad, 0), ys.max() + pad + 1
        x0, x1 = max(xs.min() - pad, 0), xs.max() + pad + 1
        ca, cb = a[y0:y1, x0:x1] == c, b[y0:y1, x0:x1] == c
        iou[int(c)] = float(inter[c]) / float(union[c])
        bf[int(c)] = boundary_f(boundary(ca), boundary(cb), tolerance)[2]
    overall = boundary_f(label_boundary(a), label_boundary(b), tolerance)
    same = int(inter.sum())
    return {
        "pixels": int(a.size), "changed_px": int(a.size - same), "pixel_agreement": same / a.size,
        "iou": iou, "boundary_f": bf,
        "boundary_precision": overall[0], "boundary_recall": overall[1], "boundary_f_overall": overall[2],
    }


def colorize(label_map: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 view of a label map; ids beyond the palette show grey."""
    if palette is None:
        palette = load_taxonomy().palette()
    lut = np.full((256, 3), 128, dtype=np.uint8)
    lut[: len(palette)] = palette
    return lut[label_map]


def class_name(names, c: int) -> str:
    return names[c] if c < len(names) else str(c)


def mean_per_key(dicts) -> dict[str, dict[str, float]]:
    """{key: {"mean", "count"}} over dicts that may each hold a subset of keys (absent = not counted)."""
    sums: dict[str, list[float]] = {}
    for d in dicts:
        for k, v in d.items():
            if v is not None:
                sums.setdefault(k, []).append(float(v))
    return {k: {"mean": float(np.mean(v)), "count": len(v)} for k, v in sorted(sums.items())}


def summarise(rows: list[dict], keys: tuple[str, ...]) -> dict:
    """Means of the scalar `keys` and of per-class IoU / boundary F over stored result dicts."""
    scalars = mean_per_key({k: row.get(k) for k in keys} for row in rows)
    ious = mean_per_key(row.get("class_iou", {}) for row in rows)
    bfs = mean_per_key(row.get("class_boundary_f", {}) for row in rows)
    return {"images": len(rows), **{k: scalars[k]["mean"] if k in scalars else None for k in keys},
            "classes": {c: {"iou": ious[c]["mean"], "boundary_f": bfs.get(c, {}).get("mean"),
                            "count": ious[c]["count"]} for c in ious}}
