"""The one pre- and post-processing path shared by training validation, export parity and serving.

Pre: resize by the model's size rule and normalise to a (3, h, w) float32 array. Post: upsample the
logits to the image's own size, then argmax and per-pixel confidence. Light module: numpy and cv2.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

cv2.setNumThreads(1)  # cv2's own pool would fight torch/onnxruntime for the same cores


def input_size(height: int, width: int, long_side: int, multiple: int) -> tuple[int, int]:
    """Model input (h, w): the long side scaled to `long_side`, both sides rounded to `multiple`."""
    scale = long_side / max(height, width)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def to_input(image: np.ndarray, size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32, resized to `size` and normalised (mean/std on 0-1)."""
    h, w = size
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_LINEAR)
    x = resized.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def logits_to_labels(logits: np.ndarray, out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(C, h, w) logits -> label map (H, W) uint8 and confidence (H, W) float32 in [1/C, 1].

    Logits are upsampled bilinearly before the argmax, so boundaries are placed at full resolution
    rather than in blocky steps. The argmax is a running per-channel maximum with cv2 (ties keep the
    lower class id, exactly as numpy's argmax), several times faster than argmax over a (H, W, C)
    array. Confidence (the winning softmax value) is smooth, so it is computed at the model's
    resolution and upsampled.
    """
    H, W = out_size
    logits = np.asarray(logits, dtype=np.float32)
    best = _resize(logits[0], H, W).copy()
    labels = np.zeros((H, W), dtype=np.uint8)
    for c in range(1, logits.shape[0]):
        up = _resize(logits[c], H, W)
        higher = cv2.compare(up, best, cv2.CMP_GT)
        np.copyto(labels, np.uint8(c), where=higher.view(bool))
        cv2.max(best, up, dst=best)
    top = logits.max(axis=0)
    low_conf = 1.0 / np.exp(logits - top).sum(axis=0)
    return labels, _resize(low_conf.astype(np.float32), H, W)


def _resize(channel: np.ndarray, H: int, W: int) -> np.ndarray:
    if channel.shape == (H, W):
        return channel
    return cv2.resize(channel, (W, H), interpolation=cv2.INTER_LINEAR)


def entropy_difficulty(confidence: np.ndarray) -> float:
    """An image-level difficulty in [0, 1]: the mean shortfall of confidence from certainty."""
    return float(1.0 - confidence.mean()) if confidence.size else 0.0


def round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)
