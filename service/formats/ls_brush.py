"""Label Studio brush RLE: binary masks <-> the byte lists of "brushlabels" results ("format": "rle").
Byte-identical to label_studio_sdk.converter.brush.mask2rle / encode_rle, vectorised with numpy;
also builds the Label Studio prediction regions, one brushlabels result per labelled class.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from service.formats._runs import (
    LabelLayers,
    as_layers,
    binary_runs,
    check_label_map,
    check_mask,
    class_counts,
    value_runs,
)

__all__ = ["decode", "decode_values", "encode", "encode_label_map", "encode_values", "regions"]

WORD_SIZE = 8
RLE_SIZES = (3, 4, 8, 16)  # run-length field widths the sdk declares (and the LS frontend reads)
_MAX_RUN = 2**16  # a 16-bit length field holds lengths 1..65536
_WIDTHS = np.array(RLE_SIZES, dtype=np.int64)
_FIELD_LIMITS = np.array([8, 16, 256], dtype=np.int64)  # longest run the sdk puts in a 3-, 4-, 8-bit field
# Header: value count (32 bits), word size - 1 (5 bits), each width - 1 (4 bits each) = 53 bits.
_HEADER_TAIL = ((WORD_SIZE - 1) << 16) | int("".join(f"{s - 1:04b}" for s in RLE_SIZES), 2)


def _chunk_codes(lengths: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(code, bit width) of every chunk, and the chunks of each run (None: one each), following the
    sdk's encode_rle decision for each run.

    The sdk never groups distinct values into one literal chunk: a run of 1 is a literal of length 1
    (flag 0, width index 0, length field 0) and every longer run is a repeat chunk whose width is the
    smallest of 3/4/8 bits that fits; past 256 it always uses 16 bits, splitting off 65536-long chunks
    while more than 65536 remain (so a remainder of, say, 10 still gets a 16-bit field).
    """
    n = lengths.astype(np.int64)
    v = values.astype(np.int64)
    field = np.searchsorted(_FIELD_LIMITS, n)  # index of the first width whose limit holds n
    width_bits = _WIDTHS[field]
    extra = np.where(field == 3, (n - 1) // _MAX_RUN, 0)  # full 65536 chunks split off first
    last_len = n - extra * _MAX_RUN
    repeat_flag = (n > 1).astype(np.int64)
    total_bits = 1 + 2 + width_bits + WORD_SIZE
    code = (repeat_flag << (total_bits - 1)) | (field << (total_bits - 3)) | ((last_len - 1) << WORD_SIZE) | v
    if not extra.any():
        return code, total_bits, None
    full_code = (1 << 26) | (3 << 24) | ((_MAX_RUN - 1) << WORD_SIZE) | v
    per_run = extra + 1
    run_of_chunk = np.repeat(np.arange(n.size), per_run)
    ends = np.cumsum(per_run) - 1
    is_last = np.zeros(run_of_chunk.size, dtype=bool)
    is_last[ends] = True
    codes = np.where(is_last, code[run_of_chunk], full_code[run_of_chunk])
    widths = np.where(is_last, total_bits[run_of_chunk], 27)
    return codes, widths, per_run


def _pack(lengths: np.ndarray, values: np.ndarray, num: int) -> list[int]:
    return _pack_many(lengths, values, np.array([0, lengths.size]), [num])[0]


def _pack_many(lengths: np.ndarray, values: np.ndarray, bounds: np.ndarray, nums: Sequence[int]) -> list[list[int]]:
    """The brush RLE bytes of several streams at once: stream k holds the runs bounds[k]:bounds[k + 1]
    of (lengths, values) and nums[k] values in all."""
    if not len(nums):
        return []
    if max(nums) >= 2**32:
        raise ValueError(f"{max(nums)} values do not fit the 32-bit count of the brush RLE header")
    codes, widths, per_run = _chunk_codes(lengths, values)
    runs = np.diff(bounds)
    if per_run is None:
        chunks = runs
    else:
        before = np.concatenate(([0], np.cumsum(per_run)))
        chunks = before[bounds[1:]] - before[bounds[:-1]]
    # Each stream opens with its header: the value count (32 bits), then the word and width fields.
    at = np.repeat(np.concatenate(([0], np.cumsum(chunks)[:-1])), 2)
    header = np.ravel(np.column_stack((np.asarray(nums, dtype=np.int64), np.full(len(nums), _HEADER_TAIL))))
    codes = np.insert(codes, at, header)
    widths = np.insert(widths, at, np.tile([32, 21], len(nums)))
    stream = np.repeat(np.arange(len(nums)), chunks + 2)
    starts = np.concatenate(([0], np.cumsum(chunks + 2)[:-1]))  # each stream's first code
    ends = np.cumsum(widths)
    bits = np.add.reduceat(widths, starts)
    offsets = ends - widths - (ends[starts] - widths[starts])[stream]  # bit offset within the stream
    # The sdk pads with 8 - total % 8 zero bits (a whole zero byte when already aligned), which
    # always makes total // 8 + 1 bytes.
    nbytes = bits // 8 + 1
    base = np.concatenate(([0], np.cumsum(nbytes)))
    # Every code is at most 32 bits and starts at most 7 bits into a byte, so it fits a 40-bit window
    # over 5 bytes. Codes never share bits, so summing each byte's contributions equals OR-ing them;
    # this costs O(chunks) instead of O(bits). float64 weights are exact for byte values.
    window = codes << (40 - (offsets & 7) - widths)
    first = (offsets >> 3) + base[stream]
    idx = np.concatenate([first + k for k in range(5)])
    part = np.concatenate([(window >> (32 - 8 * k)) & 0xFF for k in range(5)])
    packed = np.bincount(idx, weights=part, minlength=int(base[-1]) + 5)[:base[-1]].astype(np.uint8)
    return [packed[a:b].tolist() for a, b in zip(base[:-1].tolist(), base[1:].tolist())]


def encode_values(values: np.ndarray) -> list[int]:
    """Brush RLE of a 1-D uint8 array, exactly as the sdk's encode_rle(values)."""
    arr = np.asarray(values).ravel()
    if arr.size == 0:
        raise ValueError("nothing to encode")
    if arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError("brush RLE values are 8-bit: 0..255")
        arr = arr.astype(np.uint8)
    starts, vals = value_runs(arr)
    lengths = np.diff(np.append(starts, arr.size))
    return _pack(lengths, vals, arr.size)


def _mask_bytes(lengths: np.ndarray, first_inside: bool, pixels: int) -> list[int]:
    # Runs alternate between background and mask; each pixel counts four times (RGBA, all 0 or 255).
    vals = (np.arange(lengths.size) & 1).astype(np.uint8) ^ np.uint8(first_inside)
    return _pack(lengths * 4, vals * np.uint8(255), pixels * 4)


def encode(mask: np.ndarray) -> list[int]:
    """Brush RLE bytes of a binary mask (H, W): mask2rle((mask != 0) * 255 as uint8), byte for byte."""
    m = check_mask(mask)
    flat = m.ravel()  # row-major, as the sdk flattens
    starts, vals = value_runs(flat)
    lengths, first_inside = binary_runs(starts, vals, flat.size, True)
    return _mask_bytes(lengths, first_inside, flat.size)


def encode_label_map(label_map: np.ndarray | LabelLayers, class_ids=None) -> dict[int, list[int]]:
    """{class_id: brush RLE bytes} for each class present (only those in class_ids if given)."""
    layers = as_layers(label_map)
    starts, vals = layers.row_runs  # one pass over pixels; then all classes at once on the runs
    n = layers.map.size
    classes, counts, bounds = class_counts(starts, vals, n, class_ids)
    # COCO-style counts open with an outside run that is empty when the class starts at pixel 0: the
    # brush stream has no empty runs, so drop those. Runs alternate outside (0) / inside (255) by position.
    inside = (np.arange(counts.size) - np.repeat(bounds[:-1], np.diff(bounds))) & 1
    keep = np.ones(counts.size, dtype=bool)
    keep[bounds[:-1][counts[bounds[:-1]] == 0]] = False
    bounds = np.concatenate(([0], np.cumsum(keep)))[bounds]
    # Each pixel counts four times (RGBA, all 0 or 255).
    streams = _pack_many(counts[keep] * 4, (inside[keep] * 255).astype(np.uint8), bounds, [n * 4] * len(classes))
    return dict(zip(classes, streams))


def decode_values(rle: Sequence[int] | bytes) -> np.ndarray:
    """The flat value array of any brush RLE stream, literal runs included (as the LS frontend writes).

    Walks chunk headers in Python (one step per chunk, not per pixel) and fills values with numpy.
    """
    data = bytes(rle)
    nbits = len(data) * 8
    buf = data + bytes(8)  # reads never fall off the end; the length check below catches truncation

    def read(pos: int, n: int) -> int:
        if pos + n > nbits:
            raise ValueError("brush RLE is truncated")
        window = int.from_bytes(buf[pos >> 3:(pos >> 3) + 8], "big")
        return (window >> (64 - (pos & 7) - n)) & ((1 << n) - 1)

    num = read(0, 32)
    word = read(32, 5) + 1
    sizes = [read(37 + 4 * i, 4) + 1 for i in range(4)]
    pos = 53
    run_lengths: list[int] = []
    run_values: list[int] = []
    bits = None
    i = 0
    while i < num:
        repeated = read(pos, 1)
        size = sizes[read(pos + 1, 2)]
        count = read(pos + 3, size) + 1
        pos += 3 + size
        if count > num - i:
            raise ValueError(f"brush RLE run of {count} overruns the declared {num} values")
        if repeated:
            run_lengths.append(count)
            run_values.append(read(pos, word))
            pos += word
        else:
            if pos + count * word > nbits:
                raise ValueError("brush RLE is truncated")
            if bits is None:
                bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
            weights = 1 << np.arange(word - 1, -1, -1, dtype=np.int64)
            words = bits[pos:pos + count * word].reshape(count, word).astype(np.int64) @ weights
            run_lengths.extend([1] * count)
            run_values.extend(words.tolist())
            pos += count * word
        i += count
    dtype = np.uint8 if word <= 8 else np.uint16 if word <= 16 else np.uint32
    return np.repeat(np.array(run_values, dtype=dtype), np.array(run_lengths, dtype=np.int64))


def decode(rle: Sequence[int] | bytes, height: int, width: int) -> np.ndarray:
    """Bool mask (H, W) from brush RLE bytes: the alpha channel of the RGBA values, non-zero = mask."""
    values = decode_values(rle)
    if values.size != height * width * 4:
        raise ValueError(f"brush RLE holds {values.size} values, a {height}x{width} RGBA mask needs "
                         f"{height * width * 4}")
    return values.reshape(height, width, 4)[:, :, 3] != 0


def regions(label_map: np.ndarray, labels: Mapping[int, str], from_name: str = "tag", to_name: str = "image",
            score: float | Mapping[int, float] | None = None) -> list[dict]:
    """Label Studio brushlabels results, one per class present that has a label name in labels.

    score is one value for all regions or {class_id: score}; regions without a score omit the key.
    """
    lm = check_label_map(label_map)
    h, w = lm.shape
    out = []
    for cid, rle in encode_label_map(lm, class_ids=labels.keys()).items():
        region = {
            "from_name": from_name, "to_name": to_name, "type": "brushlabels",
            "original_width": int(w), "original_height": int(h), "image_rotation": 0,
            "value": {"format": "rle", "rle": rle, "brushlabels": [labels[cid]]},
        }
        s = score.get(cid) if isinstance(score, Mapping) else score
        if s is not None:
            region["score"] = float(s)
        out.append(region)
    return out
