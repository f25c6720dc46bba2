"""COCO RLE against pycocotools, the reference: identical compressed strings, identical decoding.
Real CCP label maps (every class, raw and fashion-13 ids) plus edge cases that stress the string form
(negative deltas, counts needing many 5-bit groups, masks starting inside, 1x1).
"""
from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as coco_mask
import pytest

from service.formats import coco_rle


def reference(mask: np.ndarray) -> dict:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))


def edge_masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    big = np.zeros((1200, 1100), dtype=bool)
    big[600:, 500:] = True  # counts near 2**19 then small: multi-group and negative deltas
    big[3, 3] = True
    stripes = np.zeros((9, 16), dtype=bool)
    stripes[:, ::2] = True  # every column a run: the longest counts list for its size
    single = np.zeros((5, 7), dtype=bool)
    single[4, 6] = True  # last pixel in column-major order
    return {
        "all_zero": np.zeros((13, 17), dtype=bool),
        "all_one": np.ones((13, 17), dtype=bool),
        "one_by_one_on": np.ones((1, 1), dtype=bool),
        "one_by_one_off": np.zeros((1, 1), dtype=bool),
        "single_pixel_last": single,
        "column_stripes": stripes,
        "row_stripes": np.ascontiguousarray(stripes.T),
        "random": rng.random((61, 43)) < 0.5,
        "big_runs": big,
        "one_row": rng.random((1, 300)) < 0.3,
    }


def test_every_class_of_real_masks_matches_pycocotools(all_masks):
    checked = 0
    for lm in all_masks:
        ours = coco_rle.encode_label_map(lm)
        assert sorted(ours) == np.unique(lm).tolist()
        for cid, rle in ours.items():
            mask = lm == cid
            ref = reference(mask)
            assert rle["size"] == ref["size"] == list(lm.shape)
            assert isinstance(rle["counts"], str)
            assert rle["counts"].encode("ascii") == ref["counts"], f"class {cid}"
            assert np.array_equal(coco_rle.decode(rle), mask)
            assert np.array_equal(coco_rle.decode(ref), mask)  # bytes counts from pycocotools
            checked += 1
    assert checked > 60


@pytest.mark.parametrize("name", sorted(edge_masks()))
def test_edge_cases_match_pycocotools(name):
    mask = edge_masks()[name]
    ours = coco_rle.encode(mask)
    assert ours["counts"].encode("ascii") == reference(mask)["counts"]
    back = coco_rle.decode(ours)
    assert back.dtype == np.bool_ and back.shape == mask.shape
    assert np.array_equal(back, mask)
    assert np.array_equal(back, coco_mask.decode(reference(mask)).astype(bool))


def test_single_mask_encode_agrees_with_label_map_path(fashion_masks):
    lm = fashion_masks[0]
    for cid, rle in coco_rle.encode_label_map(lm).items():
        assert coco_rle.encode(lm == cid) == rle
        assert coco_rle.encode((lm == cid).astype(np.uint8) * 7) == rle  # any non-zero is foreground


def test_class_ids_filter_and_json(fashion_masks):
    lm = fashion_masks[1]
    present = np.unique(lm).tolist()
    picked = coco_rle.encode_label_map(lm, class_ids=[present[-1], 250])
    assert list(picked) == [present[-1]]
    json.dumps(picked)  # the service returns these as JSON as they are


def test_decode_uncompressed_counts_matches_pycocotools(fashion_masks):
    lm = fashion_masks[2]
    h, w = lm.shape
    for cid in np.unique(lm).tolist():
        mask = lm == cid
        counts = coco_rle.counts_from_string(coco_rle.encode(mask)["counts"]).tolist()
        assert counts[0] >= 0 and sum(counts) == h * w
        uncompressed = {"size": [h, w], "counts": counts}
        assert np.array_equal(coco_rle.decode(uncompressed), mask)
        # pycocotools' own conversion of the same uncompressed RLE gives our compressed string
        assert coco_mask.frPyObjects(uncompressed, h, w)["counts"] == reference(mask)["counts"]


def test_counts_string_round_trip_with_large_and_negative_deltas():
    counts = [0, 5, 1_000_000, 3, 2, 999_990, 1, 1, 2**31 - 1, 7]
    s = coco_rle.counts_to_string(counts)
    assert coco_rle.counts_from_string(s).tolist() == counts
    assert coco_rle.counts_to_string([]) == ""


def test_decode_label_map_rebuilds_the_map(fashion_masks):
    lm = fashion_masks[3]
    rebuilt = coco_rle.decode_label_map(coco_rle.encode_label_map(lm), *lm.shape)
    assert np.array_equal(rebuilt, lm)


@pytest.mark.parametrize("bad", [
    {"size": [2, 2], "counts": "3"},  # covers 3 pixels, not 4
    {"size": [2, 2], "counts": [1, -1, 4]},
    {"size": [2, 2], "counts": "\x7f"},
    {"size": [2, 2], "counts": "P"},  # continuation bit set on the last character
    {"counts": "4"},
])
def test_decode_rejects_malformed(bad):
    with pytest.raises(ValueError):
        coco_rle.decode(bad)


def test_encode_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        coco_rle.encode(np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="uint8"):
        coco_rle.encode_label_map(np.zeros((2, 2), dtype=np.int32))
