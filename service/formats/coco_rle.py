"""COCO run-length encoding: binary masks <-> {"size": [h, w], "counts": str} as pycocotools writes them.
Column-major (Fortran order) runs starting with background, in COCO's compressed string form;
byte-identical to pycocotools.mask.encode, in numpy so the service does not need pycocotools at run time.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from service.formats._runs import LabelLayers, as_layers, binary_runs, check_mask, class_counts, value_runs

__all__ = ["counts_from_string", "counts_to_string", "counts_to_strings", "decode", "decode_label_map", "encode", "encode_label_map"]


def _counts_from_runs(lengths: np.ndarray, first_inside: bool) -> np.ndarray:
    # COCO counts always open with a background run, so a mask starting inside gets a zero-length one.
    if first_inside:
        return np.concatenate((np.zeros(1, dtype=np.int64), lengths))
    return lengths.astype(np.int64, copy=False)


def counts_to_string(counts: Sequence[int] | np.ndarray) -> str:
    """COCO's compressed form of run counts (pycocotools' rleToString), vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    return counts_to_strings(counts, np.array([0, counts.size]))[0]


def counts_to_strings(counts: np.ndarray, bounds: np.ndarray) -> list[str]:
    """counts_to_string of each counts[bounds[k]:bounds[k + 1]], all in one set of array operations.

    From the fourth count of each on, a value is stored as the difference from the count two before it
    (same colour), then written as little-endian 5-bit groups with a continuation bit, offset by 48.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size == 0:
        return [""] * (len(bounds) - 1)
    sizes = np.diff(bounds)
    x = counts.copy()
    # pycocotools deltas from index 3 (its test is i > 2), not 2; mirror it or strings differ.
    local = np.arange(counts.size) - np.repeat(bounds[:-1], sizes)
    delta = np.flatnonzero(local >= 3)
    x[delta] -= counts[delta - 2]
    groups, valid = [], []
    active = np.ones(x.size, dtype=bool)
    while active.any():
        c = x & 0x1F
        x >>= 5  # arithmetic shift: negative deltas end when only sign bits remain
        more = np.where((c & 0x10) != 0, x != -1, x != 0)
        groups.append(c | (more.astype(np.int64) << 5))
        valid.append(active.copy())
        active &= more
    valid_2d = np.stack(valid, axis=1)
    text = (np.stack(groups, axis=1)[valid_2d] + 48).astype(np.uint8).tobytes().decode("ascii")
    chars_before = np.concatenate(([0], np.cumsum(valid_2d.sum(axis=1))))[bounds]
    return [text[a:b] for a, b in zip(chars_before[:-1].tolist(), chars_before[1:].tolist())]


def counts_from_string(s: str | bytes) -> np.ndarray:
    """Run counts from COCO's compressed string (pycocotools' rleFrString), vectorised."""
    raw = np.frombuffer(s.encode("ascii") if isinstance(s, str) else bytes(s), dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    c = raw.astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        raise ValueError("COCO RLE string has characters outside '0'..'o'")
    last = (c & 0x20) == 0
    if not last[-1]:
        raise ValueError("COCO RLE string ends in the middle of a count")
    group = np.concatenate(([0], np.cumsum(last)[:-1]))
    group_start = np.flatnonzero(np.concatenate(([True], last[:-1])))
    k = np.arange(c.size) - group_start[group]
    if k.max() >= 12:  # 12 groups of 5 bits already exceed int64
        raise ValueError("COCO RLE string has a count too large to decode")
    x = np.add.reduceat((c & 0x1F) << (5 * k), group_start)
    # A set bit 4 in the final group means the value is negative: sign-extend above the bits read.
    ngroups = np.diff(np.append(group_start, c.size))
    negative = (c[last] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * ngroups[negative])
    counts = x.copy()
    # Undo the same-colour deltas: odd indices chain down to 1, even ones down to 2 (index 0 is plain).
    counts[1::2] = np.cumsum(x[1::2])
    counts[2::2] = np.cumsum(x[2::2])
    return counts


def encode(mask: np.ndarray) -> dict:
    """COCO RLE of one binary mask (H, W); any non-zero pixel is foreground."""
    m = check_mask(mask)
    flat = m.T.ravel()  # column-major, as COCO reads masks
    starts, values = value_runs(flat)
    lengths, first_inside = binary_runs(starts, values, flat.size, True)
    counts = _counts_from_runs(lengths, first_inside)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts_to_string(counts)}


def encode_label_map(label_map: np.ndarray | LabelLayers, class_ids: Iterable[int] | None = None) -> dict[int, dict]:
    """{class_id: COCO RLE} for each class present in the label map (only those in class_ids if given)."""
    layers = as_layers(label_map)
    starts, values = layers.column_runs  # one pass over pixels, then all classes at once on the runs
    classes, counts, bounds = class_counts(starts, values, layers.map.size, class_ids)
    size = [int(layers.map.shape[0]), int(layers.map.shape[1])]
    return {cid: {"size": size, "counts": text} for cid, text in zip(classes, counts_to_strings(counts, bounds))}


def decode(rle: Mapping) -> np.ndarray:
    """Bool mask (H, W) from a COCO RLE; counts may be the compressed string/bytes or a list of ints."""
    try:
        h, w = (int(v) for v in rle["size"])
        raw = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a COCO RLE (needs 'size': [h, w] and 'counts'): {exc}") from None
    if isinstance(raw, (str, bytes, bytearray)):
        counts = counts_from_string(raw)
    else:
        counts = np.asarray(raw, dtype=np.int64).ravel()
    if counts.size and counts.min() < 0:
        raise ValueError("COCO RLE has a negative run count")
    total = int(counts.sum())
    if total != h * w:
        raise ValueError(f"COCO RLE counts cover {total} pixels, size {h}x{w} needs {h * w}")
    flat = np.repeat((np.arange(counts.size) & 1).astype(bool), counts)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def decode_label_map(rles: Mapping[int, Mapping], height: int, width: int) -> np.ndarray:
    """Label map (H, W) uint8 from {class_id: COCO RLE}; later classes win where masks overlap."""
    out = np.zeros((height, width), dtype=np.uint8)
    for cid, rle in rles.items():
        mask = decode(rle)
        if mask.shape != out.shape:
            raise ValueError(f"class {cid}: RLE size {list(mask.shape)} is not {[height, width]}")
        out[mask] = int(cid)
    return out
