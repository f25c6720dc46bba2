"""Polygons: tracing and rasterising back reproduce real CCP class masks, holes and islands included.
At tolerance 0 the round trip must reach IoU >= 0.99 per class; simplification must shrink polygons
while staying close; Label Studio regions use percent coordinates of pixel centres.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from service.formats import polygons


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_real_masks_round_trip_at_tolerance_zero(all_masks):
    worst, checked = 1.0, 0
    for lm in all_masks:
        per_class = polygons.encode_label_map(lm, tolerance=0)
        assert sorted(per_class) == np.unique(lm).tolist()
        for cid, polys in per_class.items():
            back = polygons.decode(polys, *lm.shape)
            score = iou(back, lm == cid)
            assert score >= 0.99, f"class {cid}: IoU {score:.4f}"
            worst = min(worst, score)
            checked += 1
    assert checked > 60


def test_real_masks_have_holes_and_they_matter(all_masks):
    # Guard that the hole path is exercised: cut holes change the raster, and it still matches.
    seen = 0
    for lm in all_masks:
        for cid, polys in polygons.encode_label_map(lm, tolerance=0).items():
            with_holes = [p for p in polys if p["holes"]]
            if not with_holes:
                continue
            seen += 1
            filled = polygons.decode([{"exterior": p["exterior"], "holes": []} for p in polys], *lm.shape)
            assert filled.sum() > (lm == cid).sum()
            assert np.array_equal(polygons.decode(polys, *lm.shape), lm == cid)
    assert seen >= 3


def test_simplification_shrinks_and_stays_close(fashion_masks):
    for lm in fashion_masks[:3]:
        exact = polygons.encode_label_map(lm, tolerance=0)
        rough = polygons.encode_label_map(lm, tolerance=2.0)
        for cid in exact:
            n_exact = sum(len(p["exterior"]) for p in exact[cid])
            n_rough = sum(len(p["exterior"]) for p in rough[cid])
            assert n_rough <= n_exact
            if (lm == cid).sum() > 5000:  # small parts lose proportionally more at 2 px
                assert iou(polygons.decode(rough[cid], *lm.shape), lm == cid) > 0.95
        assert sum(len(p["exterior"]) for v in rough.values() for p in v) < \
            0.5 * sum(len(p["exterior"]) for v in exact.values() for p in v)


def test_island_inside_hole_and_thin_parts():
    m = np.zeros((24, 24), dtype=bool)
    m[2:20, 2:20] = True
    m[5:17, 5:17] = False  # hole
    m[9:13, 9:13] = True  # island inside the hole
    m[7, 7] = True  # single pixel inside the hole
    m[22, 3:15] = True  # one-pixel-thin line
    m[0, 23] = True  # corner pixel
    polys = polygons.encode(m, tolerance=0)
    assert len(polys) == 5
    assert sum(len(p["holes"]) for p in polys) == 1
    assert np.array_equal(polygons.decode(polys, 24, 24), m)
    assert np.array_equal(polygons.decode(list(reversed(polys)), 24, 24), m)  # order-independent
    ring = next(p for p in polys if p["holes"])
    assert [2, 2] in ring["exterior"] and [19, 19] in ring["exterior"]  # pixel centres of the corners


def test_empty_and_full_masks():
    assert polygons.encode(np.zeros((5, 6), dtype=bool)) == []
    full = polygons.encode(np.ones((5, 6), dtype=bool), tolerance=0)
    assert sorted(map(tuple, full[0]["exterior"])) == [(0, 0), (0, 4), (5, 0), (5, 4)]
    assert polygons.decode(full, 5, 6).all()


def test_decode_label_map_and_json(fashion_masks):
    lm = fashion_masks[4]
    per_class = polygons.encode_label_map(lm, tolerance=0)
    json.dumps(per_class)
    rebuilt = polygons.decode_label_map(per_class, *lm.shape)
    assert (rebuilt == lm).mean() > 0.99


def test_ls_regions_percent_points(fashion_masks, fashion13):
    lm = fashion_masks[0]
    h, w = lm.shape
    per_class = polygons.encode_label_map(lm, class_ids=range(1, 13), tolerance=1.0)
    labels = {c: fashion13.names[c] for c in per_class if c != 3}
    regions = polygons.ls_regions(per_class, w, h, labels, from_name="poly", to_name="img", score=0.5)
    assert regions and all(r["value"]["polygonlabels"][0] != "top" for r in regions)
    for r in regions:
        assert (r["type"], r["from_name"], r["to_name"]) == ("polygonlabels", "poly", "img")
        assert (r["original_width"], r["original_height"], r["image_rotation"], r["score"]) == (w, h, 0, 0.5)
        assert r["value"]["closed"] is True
        pts = np.array(r["value"]["points"])
        assert len(pts) >= 3 and pts.min() > 0 and pts.max() < 100
    expected = sum(len([p for p in per_class[c] if len(p["exterior"]) >= 3]) for c in labels)
    assert len(regions) == expected
    one = polygons.ls_regions({1: [{"exterior": [[0, 0], [9, 0], [9, 4]], "holes": []}]}, 10, 5, {1: "skin"})
    assert one[0]["value"]["points"] == [[5.0, 10.0], [95.0, 10.0], [95.0, 90.0]]
    assert "score" not in one[0]


def test_bad_input():
    with pytest.raises(ValueError):
        polygons.encode(np.ones((3, 3), dtype=bool), tolerance=-1)
    with pytest.raises(ValueError):
        polygons.decode([{"exterior": []}], 4, 4)
    with pytest.raises(ValueError):
        polygons.decode([{"outline": [[0, 0]]}], 4, 4)
