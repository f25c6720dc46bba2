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
    present_classes,
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


def _chunk_codes(lengths: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code, bit width) of every chunk, following the sdk's encode_rle decision for each run.

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
        return code, total_bits
    full_code = (1 << 26) | (3 << 24) | ((_MAX_RUN - 1) << WORD_SIZE) | v
    per_run = extra + 1
    run_of_chunk = np.repeat(np.arange(n.size), per_run)
    ends = np.cumsum(per_run) - 1
    is_last = np.zeros(run_of_chunk.size, dtype=bool)
    is_last[ends] = True
    codes = np.where(is_last, code[run_of_chunk], full_code[run_of_chunk])
    widths = np.where(is_last, total_bits[run_of_chunk], 27)
    return codes, widths


def _pack(lengths: np.ndarray, values: np.ndarray, num: int) -> list[int]:
    if num >= 2**32:
        raise ValueError(f"{num} values do not fit the 32-bit count of the brush RLE header")
    codes, widths = _chunk_codes(lengths, values)
    codes = np.concatenate(([num, _HEADER_TAIL], codes))
    widths = np.concatenate(([32, 21], widths))
    offsets = np.cumsum(widths) - widths
    total = int(offsets[-1] + widths[-1])
    # Every code is at most 32 bits and starts at most 7 bits into a byte, so it fits a 40-bit window
    # over 5 bytes. Codes never share bits, so summing each byte's contributions equals OR-ing them;
    # this costs O(chunks) instead of O(bits). float64 weights are exact for byte values.
    window = codes << (40 - (offsets & 7) - widths)
    first = offsets >> 3
    idx = np.concatenate([first + k for k in range(5)])
    part = np.concatenate([(window >> (32 - 8 * k)) & 0xFF for k in range(5)])
    # The sdk pads with 8 - total % 8 zero bits (a whole zero byte when already aligned), which
    # always makes total // 8 + 1 bytes.
    nbytes = total // 8 + 1
    packed = np.bincount(idx, weights=part, minlength=nbytes + 5)[:nbytes]
    return packed.astype(np.uint8).tolist()


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
    starts, vals = layers.row_runs  # one pass over pixels; each class then only walks the runs
    n = layers.map.size
    return {cid: _mask_bytes(*binary_runs(starts, vals, n, cid), n)
            for cid in present_classes(vals, class_ids)}


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
