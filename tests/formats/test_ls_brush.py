"""Label Studio brush RLE against label_studio_sdk.converter.brush, the reference encoder/decoder.
Byte-for-byte equality with mask2rle / encode_rle on real CCP masks and on edge cases that reach every
branch of the sdk's encoder (literal runs, each length-field width, splits of runs past 65536).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
try:
    from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle
except ImportError as exc:  # a missing reference is a failure, not a skip
    raise ImportError("these tests need the reference encoder: pip install --no-deps label-studio-sdk==2.1.2 "
                      "(its full dependency set would downgrade numpy/opencv; see pyproject.toml)") from exc

from service.formats import ls_brush


def sdk_mask_bytes(mask: np.ndarray) -> list[int]:
    return mask2rle((mask != 0).astype(np.uint8) * np.uint8(255))


def edge_masks() -> dict[str, np.ndarray]:
    single = np.zeros((7, 5), dtype=bool)
    single[3, 2] = True
    stripes = np.zeros((6, 40), dtype=bool)
    stripes[:, ::2] = True  # pixel-wide stripes: every run is one pixel (4 values)
    long_run = np.zeros((300, 300), dtype=bool)
    long_run[100:250] = True  # 45000 pixels = 180000 values: two 65536 splits and a remainder
    exact = np.zeros((128, 256), dtype=bool)
    exact[64:] = True  # runs of exactly 65536 values: one 16-bit chunk, no split
    return {
        "all_zero": np.zeros((40, 30), dtype=bool),
        "all_one": np.ones((40, 30), dtype=bool),
        "all_zero_large": np.zeros((600, 500), dtype=bool),  # 1.2M values: 18 full chunks + remainder
        "one_by_one_on": np.ones((1, 1), dtype=bool),
        "one_by_one_off": np.zeros((1, 1), dtype=bool),
        "single_pixel": single,
        "stripes": stripes,
        "checkerboard": (np.indices((33, 31)).sum(axis=0) % 2).astype(bool),
        "long_run_split": long_run,
        "exact_65536": exact,
        "random": np.random.default_rng(3).random((50, 77)) < 0.4,
    }


def test_real_masks_every_class_byte_identical(all_masks):
    checked = 0
    for lm in all_masks:
        ours = ls_brush.encode_label_map(lm)
        assert sorted(ours) == np.unique(lm).tolist()
        for cid, rle in ours.items():
            mask = lm == cid
            ref = sdk_mask_bytes(mask)
            assert rle == ref, f"class {cid}: first difference at byte " \
                f"{next((i for i, (a, b) in enumerate(zip(rle, ref)) if a != b), min(len(rle), len(ref)))}"
            assert np.array_equal(ls_brush.decode(ref, *lm.shape), mask)  # our decoder on sdk bytes
            checked += 1
    assert checked > 60


@pytest.mark.parametrize("name", sorted(edge_masks()))
def test_edge_masks_byte_identical_and_decodable(name):
    mask = edge_masks()[name]
    ours = ls_brush.encode(mask)
    ref = sdk_mask_bytes(mask)
    assert ours == ref
    assert all(type(b) is int and 0 <= b <= 255 for b in ours)
    assert np.array_equal(ls_brush.decode(ref, *mask.shape), mask)
    sdk_alpha = decode_rle(bytes(ours)).reshape(*mask.shape, 4)[:, :, 3]
    assert np.array_equal(sdk_alpha == 255, mask)


RUN_LENGTHS = [1, 2, 8, 9, 16, 17, 256, 257, 65535, 65536, 65537, 131072, 131073, 200001]


@pytest.mark.parametrize("n", RUN_LENGTHS)
def test_encode_values_matches_encode_rle_at_width_boundaries(n):
    values = np.concatenate([np.full(n, 255, np.uint8), np.zeros(3, np.uint8), np.full(n, 7, np.uint8)])
    ours = ls_brush.encode_values(values)
    assert ours == encode_rle(values)
    assert np.array_equal(ls_brush.decode_values(ours), values)


def test_encode_values_literal_runs_match_encode_rle():
    rng = np.random.default_rng(11)
    alternating = np.tile(np.array([0, 255], np.uint8), 300)  # nothing but one-value literals
    for values in (alternating, rng.integers(0, 256, 500).astype(np.uint8), np.array([5], np.uint8)):
        ours = ls_brush.encode_values(values)
        assert ours == encode_rle(values)
        assert np.array_equal(ls_brush.decode_values(ours), values)
    for n in range(1, 33):  # every padding remainder, including whole-byte totals (extra zero byte)
        values = rng.integers(0, 2, n).astype(np.uint8) * np.uint8(255)
        assert ls_brush.encode_values(values) == encode_rle(values)


def bits_of(fields: list[tuple[int, int]]) -> list[int]:
    """Independent bit writer for hand-built streams: (value, width) fields, MSB first, zero-padded."""
    s = "".join(f"{v:0{w}b}" for v, w in fields)
    s += "0" * (-len(s) % 8)
    return [int(s[i:i + 8], 2) for i in range(0, len(s), 8)]


def test_decode_multi_value_literals_as_the_frontend_writes():
    # Label Studio's frontend (rle-pack) groups distinct values into one literal chunk; the sdk never
    # does, so this stream is built by hand: 4 literals, a repeat of 12, 2 literals, a repeat of 2.
    header = [(20, 32), (7, 5), (2, 4), (3, 4), (7, 4), (15, 4)]
    body = [(0, 1), (0, 2), (3, 3)] + [(v, 8) for v in (0, 0, 0, 255)]
    body += [(1, 1), (1, 2), (11, 4), (255, 8)]
    body += [(0, 1), (2, 2), (1, 8), (9, 8), (200, 8)]
    body += [(1, 1), (0, 2), (1, 3), (0, 8)]
    values = ls_brush.decode_values(bits_of(header + body))
    expected = np.array([0, 0, 0, 255] + [255] * 12 + [9, 200] + [0, 0], dtype=np.uint8)
    assert np.array_equal(values, expected)
    assert np.array_equal(decode_rle(bytes(bits_of(header + body))), expected)


def test_decode_rejects_bad_streams():
    good = ls_brush.encode(np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="needs"):
        ls_brush.decode(good, 3, 4)
    with pytest.raises(ValueError, match="truncated"):
        ls_brush.decode_values(good[:7])
    overrun = bits_of([(4, 32), (7, 5), (2, 4), (3, 4), (7, 4), (15, 4), (1, 1), (0, 2), (7, 3), (0, 8)])
    with pytest.raises(ValueError, match="overruns"):
        ls_brush.decode_values(overrun)


def test_regions_one_per_labelled_class(fashion_masks, fashion13):
    lm = fashion_masks[0]
    present = [c for c in np.unique(lm).tolist() if c != 0]
    labels = {c: fashion13.names[c] for c in present[1:]}  # leave the first garment class unlabelled
    regions = ls_brush.regions(lm, labels, from_name="brush", to_name="img", score={present[1]: 0.25})
    assert [r["value"]["brushlabels"] for r in regions] == [[labels[c]] for c in present[1:]]
    h, w = lm.shape
    for r, cid in zip(regions, present[1:]):
        assert (r["from_name"], r["to_name"], r["type"]) == ("brush", "img", "brushlabels")
        assert (r["original_width"], r["original_height"], r["image_rotation"]) == (w, h, 0)
        assert r["value"]["format"] == "rle"
        assert r["value"]["rle"] == sdk_mask_bytes(lm == cid)
        assert r.get("score") == (0.25 if cid == present[1] else None)
    json.dumps(regions)
    assert all(r["score"] == 0.9 for r in ls_brush.regions(lm, labels, score=0.9))
