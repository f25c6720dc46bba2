"""The encoders' shortcuts give byte-identical output to the plain way of computing the same thing.
Classes present from runs instead of a histogram, masks from one comparison, polygons traced in the
class's bounding box instead of the whole image, the parts LabelLayers shares between formats, and
class areas and scores summed per run.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.taxonomy import load_taxonomy
from service.drafting.answer import class_summaries
from service.formats import FORMATS, LabelLayers, coco_rle, ls_brush, png, polygons
from service.formats._runs import bounding_box, class_mask, value_runs

SHAPES = [(1, 1), (1, 7), (7, 1), (2, 2), (5, 3), (33, 17)]


def _odd_maps() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    maps = []
    for shape in SHAPES:
        maps += [rng.integers(0, 20, shape).astype(np.uint8), np.full(shape, 3, np.uint8),
                 np.zeros(shape, np.uint8)]
        edge = np.zeros(shape, np.uint8)
        edge[0, :] = 4
        edge[:, -1] = 5  # regions on the image border
        maps.append(edge)
    return maps


def test_class_masks(all_masks):
    for lm in all_masks + _odd_maps() + [all_masks[0][::2, ::3]]:  # a non-contiguous view too
        for c in np.unique(lm).tolist() + [255]:
            mask = class_mask(lm, c)
            assert mask.dtype == np.uint8 and np.array_equal(mask, (lm == c).astype(np.uint8) * 255)


def test_bounding_box():
    for lm in _odd_maps():
        for c in np.unique(lm).tolist():
            ys, xs = np.nonzero(lm == c)
            assert bounding_box(class_mask(lm, c)) == (xs.min(), ys.min(), xs.max(), ys.max())
    assert bounding_box(np.zeros((4, 5), np.uint8)) is None


def _full_image_polygons(mask: np.ndarray, tolerance: float) -> list[dict]:
    # What encode did before tracing in the bounding box: findContours over the whole image.
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    tree = hierarchy.reshape(-1, 4)
    out = []
    for i, contour in enumerate(contours):
        if tree[i, 3] != -1:
            continue
        holes, child = [], tree[i, 2]
        while child != -1:
            holes.append(polygons._simplify(contours[child], tolerance))
            child = tree[child, 0]
        out.append({"exterior": polygons._simplify(contour, tolerance), "holes": holes})
    return out


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.5])
def test_polygons_traced_in_the_box_equal_whole_image_tracing(all_masks, tolerance):
    for lm in all_masks + _odd_maps():
        per_class = polygons.encode_label_map(lm, tolerance=tolerance)
        assert sorted(per_class) == np.unique(lm).tolist()
        for c, polys in per_class.items():
            assert polys == _full_image_polygons(lm == c, tolerance), (lm.shape, c)
            assert polygons.encode(lm == c, tolerance) == polys


def test_label_layers_equal_the_plain_computations(all_masks):
    for lm in all_masks + _odd_maps():
        layers = LabelLayers(lm)
        assert layers.present.tolist() == np.unique(lm).tolist()
        for got, want in ((layers.row_runs, value_runs(lm.ravel())), (layers.column_runs, value_runs(lm.T.ravel()))):
            assert all(np.array_equal(g, w) for g, w in zip(got, want))
        assert np.array_equal(np.bincount(layers.row_runs[1], weights=layers.run_lengths(), minlength=256),
                              np.bincount(lm.ravel(), minlength=256))
        for c in np.unique(lm).tolist():
            assert layers.box(c) == bounding_box(class_mask(lm, c))
            crop, ox, oy = layers.crop(c)
            x1, y1, x2, y2 = layers.box(c)
            assert (ox, oy) == (max(x1 - 1, 0), max(y1 - 1, 0))
            assert np.array_equal(crop, class_mask(lm, c)[oy:y2 + 2, ox:x2 + 2]) and not crop.flags.writeable
        assert set(layers.boxes) == set(np.unique(lm).tolist()) and layers.box(256) is None


def test_class_pngs_from_box_rows_equal_whole_mask_pngs(all_masks):
    # Present classes are packed from their box's rows only; an absent class gives an all-black PNG.
    for lm in all_masks + _odd_maps():
        ids = np.unique(lm).tolist() + [int(lm.max()) + 1]
        assert png.encode_class_masks(lm, ids) == [png.encode_mask(lm == c) for c in ids]


def test_label_map_run_encoders_equal_one_mask_at_a_time(all_masks):
    # COCO RLE and brush RLE encode every class of a map in one batch of array operations; each
    # class's payload must equal encoding that class's mask alone (itself checked against the references).
    for lm in all_masks[:3] + _odd_maps():
        ids = np.unique(lm).tolist()
        for subset in (None, ids[::2], [ids[-1], 255]):
            got_coco, got_brush = coco_rle.encode_label_map(lm, subset), ls_brush.encode_label_map(lm, subset)
            want = [c for c in ids if subset is None or c in subset]
            assert list(got_coco) == want and list(got_brush) == want
            for c in want:
                assert got_coco[c] == coco_rle.encode(lm == c) and got_brush[c] == ls_brush.encode(lm == c)
        absent = [c for c in range(256) if c not in ids][:2]
        assert coco_rle.encode_label_map(lm, absent) == {} and ls_brush.encode_label_map(lm, absent) == {}


def test_formats_given_layers_equal_formats_given_the_map(fashion_masks, fashion13):
    # One LabelLayers shared by every format, as the service does, changes no byte of any payload.
    for lm in fashion_masks:
        layers = LabelLayers(lm)
        for name, fn in FORMATS.items():
            assert fn(layers, fashion13.names, None) == fn(lm.copy(), fashion13.names, None), name


def test_class_summaries_equal_per_pixel_sums(fashion_masks):
    taxonomy = load_taxonomy("fashion-13")
    rng = np.random.default_rng(2)
    for lm in fashion_masks:
        confidence = rng.uniform(0.2, 1.0, lm.shape).astype(np.float32)
        got = class_summaries(lm, confidence, taxonomy)
        ids = np.unique(lm)
        assert [e["id"] for e in got] == ids.tolist()
        for entry in got:
            inside = lm == entry["id"]
            assert entry["area"] == int(inside.sum())
            assert entry["score"] == round(float(confidence[inside].astype(np.float64).mean()), 4)


def test_class_summaries_of_a_large_photo_sum_a_chunk_at_a_time(fashion_masks, monkeypatch):
    """Past _SUM_CHUNK pixels the per-run sums are taken a chunk at a time (and a run longer than a chunk
    in pieces), so a huge photo needs no float64 copy of its confidence: the same areas and scores."""
    import service.drafting.answer as results

    taxonomy = load_taxonomy("fashion-13")
    rng = np.random.default_rng(3)
    lm = np.tile(fashion_masks[0], (2, 2))
    lm[: lm.shape[0] // 3] = 0  # background rows: runs far longer than a chunk
    confidence = rng.uniform(0.2, 1.0, lm.shape).astype(np.float32)
    whole = class_summaries(lm, confidence, taxonomy)
    monkeypatch.setattr(results, "_SUM_CHUNK", 5000)
    assert class_summaries(LabelLayers(lm), confidence, taxonomy) == whole
    starts = LabelLayers(lm).row_runs[0]
    np.testing.assert_array_equal(results._run_sums(confidence.ravel(), starts, chunk=777),
                                  np.add.reduceat(confidence.ravel(), starts, dtype=np.float64))
