"""CVAT mask points against cvat_sdk.masks (encode_mask / decode_mask), the reference, on real masks.
Checks the exact list (run lengths starting with background, inclusive bbox last) and round trips,
plus the layout on hand-made masks and refusals of malformed points.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from cvat_sdk.masks import decode_mask, encode_mask

from service.formats import cvat


def test_real_masks_every_class_matches_cvat_sdk(all_masks):
    checked = 0
    for lm in all_masks:
        h, w = lm.shape
        ours = cvat.encode_label_map(lm)
        assert sorted(ours) == np.unique(lm).tolist()
        for cid, points in ours.items():
            mask = lm == cid
            ref = encode_mask(mask)
            assert points == ref
            assert all(type(v) is int for v in points)
            assert np.array_equal(cvat.decode(points, h, w), mask)
            assert np.array_equal(decode_mask(points, image_width=w, image_height=h), mask)
            checked += 1
    assert checked > 60


def edge_masks() -> dict[str, np.ndarray]:
    starts_inside = np.zeros((6, 8), dtype=bool)
    starts_inside[1:4, 2:5] = True
    starts_outside = np.zeros((6, 8), dtype=bool)
    starts_outside[1, 3] = starts_outside[3, 1] = True  # bbox corner (1, 1) is background
    return {
        "empty": np.zeros((4, 5), dtype=bool),
        "full": np.ones((4, 5), dtype=bool),
        "one_by_one": np.ones((1, 1), dtype=bool),
        "starts_inside": starts_inside,
        "starts_outside": starts_outside,
        "checker": (np.indices((9, 7)).sum(axis=0) % 2).astype(bool),
        "random": np.random.default_rng(5).random((40, 30)) < 0.3,
    }


@pytest.mark.parametrize("name", sorted(edge_masks()))
def test_edge_cases_match_cvat_sdk(name):
    mask = edge_masks()[name]
    points = cvat.encode(mask)
    assert points == encode_mask(mask)
    assert np.array_equal(cvat.decode(points, *mask.shape), mask)


def test_layout_is_runs_then_inclusive_box():
    m = np.zeros((5, 6), dtype=bool)
    m[1:3, 2:4] = True
    m[1, 2] = False
    # box columns 2..3, rows 1..2: row-major crop [0, 1, 1, 1] -> background 1, mask 3
    assert cvat.encode(m) == [1, 3, 2, 1, 3, 2]
    m[1, 2] = True
    assert cvat.encode(m) == [0, 4, 2, 1, 3, 2]  # leading zero-length background run


def test_decode_label_map_and_json(fashion_masks):
    lm = fashion_masks[5]
    per_class = cvat.encode_label_map(lm)
    json.dumps(per_class)
    assert np.array_equal(cvat.decode_label_map(per_class, *lm.shape), lm)


@pytest.mark.parametrize("points", [
    [1, 0, 0],  # too short
    [1, 0, 0, 9, 0],  # box outside a 4x4 image
    [2, 0, 0, 0, 0],  # runs cover 2 pixels of a 1-pixel box
    [0.5, 0.5, 0, 0, 0, 0],
    [-1, 2, 0, 0, 0, 0],
])
def test_decode_rejects_malformed(points):
    with pytest.raises(ValueError):
        cvat.decode(points, 4, 4)
