"""The one pre- and post-processing path shared by training validation, export parity and serving.

Pre: resize by the model's size rule and normalise to a (3, h, w) float32 array. Post: upsample the
logits to the image's own size, then argmax and per-pixel confidence; the argmax is that of every
channel upsampled (`logits_to_labels_reference`), computed without upsampling every channel. Light
module: numpy and cv2.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from models.upsample_argmax import upsampled_argmax


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
    if resized.dtype == np.uint8 and resized.ndim == 3 and resized.shape[2] == len(mean) == len(std):
        # A uint8 channel has 256 possible values: look the normalised ones up, straight into (3, h, w).
        # The table holds exactly what the arithmetic below computes, so the result is bit for bit the same.
        table = _normalisation_table(tuple(mean), tuple(std))
        out = np.empty((resized.shape[2], h, w), dtype=np.float32)
        for c in range(resized.shape[2]):
            np.take(table[c], resized[:, :, c], out=out[c])
        return out
    return _normalise(resized, mean, std)


def _normalise(pixels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    x = pixels.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@functools.lru_cache(maxsize=8)
def _normalisation_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(channels, 256) float32: _normalise of every uint8 value, per channel."""
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], len(mean), axis=1)[None]  # (1, 256, channels)
    table = np.ascontiguousarray(_normalise(values, mean, std)[:, 0, :])
    table.setflags(write=False)
    return table


def logits_to_labels(logits: np.ndarray, out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(C, h, w) logits -> label map (H, W) uint8 and confidence (H, W) float32 in [1/C, 1].

    The labels are those of upsampling every logit channel bilinearly (cv2.resize, INTER_LINEAR) to
    the image's size and taking the argmax, ties to the lower class id (`logits_to_labels_reference`
    does exactly that), so boundaries are placed at full resolution rather than in blocky steps. They
    are computed without upsampling every channel: see models/upsample_argmax.py. Confidence (the winning
    softmax value) is smooth, so it is computed at the model's resolution and upsampled.
    """
    H, W = out_size
    logits = np.asarray(logits, dtype=np.float32)
    top, second, low_labels = _top_two(logits)
    conf = _resize(_confidence(logits, top), H, W)
    if (H, W) == logits.shape[1:]:
        return low_labels, conf
    labels = upsampled_argmax(logits, top, second, low_labels, H, W)
    if labels is None:  # sizes or values outside what the fast path is proven for
        labels = _reference_labels(logits, H, W)
    return labels, conf


def logits_to_labels_reference(logits: np.ndarray, out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The definition `logits_to_labels` reproduces: every channel upsampled, then a running argmax.

    Kept for tests and benchmarks; several times slower at photo size.
    """
    H, W = out_size
    logits = np.asarray(logits, dtype=np.float32)
    top = logits.max(axis=0)
    low_conf = 1.0 / np.exp(logits - top).sum(axis=0)
    return _reference_labels(logits, H, W), _resize(low_conf.astype(np.float32), H, W)


def _reference_labels(logits: np.ndarray, H: int, W: int) -> np.ndarray:
    # A running per-channel maximum with cv2 (ties keep the lower class id, exactly as numpy's
    # argmax), several times faster than argmax over a (H, W, C) array.
    best = _resize(logits[0], H, W).copy()
    labels = np.zeros((H, W), dtype=np.uint8)
    for c in range(1, logits.shape[0]):
        up = _resize(logits[c], H, W)
        higher = cv2.compare(up, best, cv2.CMP_GT)
        np.copyto(labels, np.uint8(c), where=higher.view(bool))
        cv2.max(best, up, dst=best)
    return labels


def _resize(channel: np.ndarray, H: int, W: int) -> np.ndarray:
    if channel.shape == (H, W):
        return channel
    return cv2.resize(channel, (W, H), interpolation=cv2.INTER_LINEAR)


def _confidence(logits: np.ndarray, top: np.ndarray) -> np.ndarray:
    """The winning softmax probability, 1 / sum(exp(logit - top)), at the logits' resolution.

    Channel by channel into one buffer: the same operations in the same order as
    `1.0 / np.exp(logits - top).sum(axis=0)`, so bit for bit the same, without (C, h, w) temporaries.
    """
    tmp = np.empty_like(top)
    total = None
    for channel in logits:
        np.subtract(channel, top, out=tmp)
        np.exp(tmp, out=tmp)
        if total is None:
            total = tmp.copy()
        else:
            total += tmp
    return (1.0 / total).astype(np.float32)


def _top_two(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: the largest logit, the second largest (equal to it on a tie) and the argmax (lowest id)."""
    best = logits[0].copy()
    second = np.full_like(best, -np.inf)
    labels = np.zeros(best.shape, dtype=np.uint8)
    low = np.empty_like(best)
    for c in range(1, logits.shape[0]):
        channel = logits[c]
        higher = cv2.compare(channel, best, cv2.CMP_GT)
        cv2.min(channel, best, dst=low)
        cv2.max(second, low, dst=second)
        np.copyto(labels, np.uint8(c), where=higher.view(bool))
        cv2.max(best, channel, dst=best)
    return best, second, labels


def entropy_difficulty(confidence: np.ndarray) -> float:
    """An image-level difficulty in [0, 1]: the mean shortfall of confidence from certainty."""
    return float(1.0 - confidence.mean()) if confidence.size else 0.0



def single_threaded_cv2() -> None:
    """Run cv2's resizes on the calling thread: its own pool would fight the model runtime (ONNX Runtime,
    torch) for the same cores. Called once at startup by the server's engine and the training loop."""
    cv2.setNumThreads(1)
