"""Segmentation scores from a confusion matrix summed over a whole dataset.

mIoU averages per-class IoU over the classes that occur in the ground truth; pixel accuracy and the
changed-pixel fraction (what an annotator would repaint) come from the same matrix. No torch.
"""
from __future__ import annotations

import numpy as np


def confusion(truth: np.ndarray, pred: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = truth, columns = prediction."""
    keep = truth != ignore
    t = truth[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(conf: np.ndarray, names: list[str]) -> dict:
    """Metrics dict: miou, pixel_accuracy, changed_pixel_fraction, per_class (name -> IoU or None)."""
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    gt = conf.sum(axis=1)
    union = gt + conf.sum(axis=0) - tp
    present = gt > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    total = conf.sum()
    acc = float(tp.sum() / total) if total else 0.0
    return {
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": acc,
        "changed_pixel_fraction": 1.0 - acc if total else 0.0,
        "per_class": {n: (float(iou[i]) if present[i] else None) for i, n in enumerate(names)},
        "pixels": int(total),
    }
