"""Correction effort: drawn squares with hand-computed boundary F, real masks vs themselves and shifted."""
from __future__ import annotations

import numpy as np
import pytest

from service.review.effort import aggregate, correction_effort


def shifted(lm: np.ndarray, dx: int) -> np.ndarray:
    """Label map moved dx px to the right; the uncovered strip becomes background."""
    out = np.zeros_like(lm)
    out[:, dx:] = lm[:, :-dx]
    return out


def test_square_shifted_by_five(tax):
    top = tax.class_id("top")
    draft = np.zeros((40, 40), np.uint8)
    draft[10:20, 10:20] = top
    final = shifted(draft, 5)                        # same square at x 15..24
    e = correction_effort(draft, final, tax)
    # Changed: the two 10 x 5 strips = 100 of 1600 px. IoU top: 50 / 150.
    assert e.changed_px == 100 and e.changed_fraction == pytest.approx(0.0625)
    assert e.class_iou["top"] == pytest.approx(1 / 3)
    assert e.class_iou["background"] == pytest.approx(1450 / 1550)
    # Boundary (3x3-cross gradient) of a 10 x 10 square: 36 inner + 40 outer = 76 px. Within 2 px of
    # the shifted square's boundary: rows 9 and 20 x 13..19 (7 each), rows 10 and 19 x 12..19 (8 each),
    # column 19 rows 11, 12, 17, 18 (4), column 20 rows 10..12 and 17..19 (6); columns 9 and 10 are
    # 4+ px from anything: 7 + 8 + 8 + 7 + 4 + 6 = 40 of 76, both ways by symmetry, so F = 40 / 76.
    assert e.boundary_precision == pytest.approx(40 / 76)
    assert e.boundary_recall == pytest.approx(40 / 76)
    assert e.boundary_f == pytest.approx(40 / 76)
    assert e.class_boundary_f["top"] == pytest.approx(40 / 76)
    assert e.mean_iou == pytest.approx(1 / 3)        # garments only: background left out


def test_tolerance_decides_what_counts_as_the_same_edge(tax):
    draft = np.zeros((40, 40), np.uint8)
    draft[10:20, 10:20] = tax.class_id("top")
    final = shifted(draft, 2)
    assert correction_effort(draft, final, tax).boundary_f == 1.0             # 2 px: within tolerance
    assert correction_effort(draft, final, tax, tolerance=1).boundary_f < 1.0


def test_class_only_in_the_final_scores_zero(tax):
    draft = np.zeros((30, 30), np.uint8)
    final = draft.copy()
    final[5:10, 5:10] = tax.class_id("socks")        # annotator added socks the draft missed
    e = correction_effort(draft, final, tax)
    assert e.class_iou["socks"] == 0.0 and e.class_boundary_f["socks"] == 0.0
    assert e.changed_px == 25
    assert "shoes" not in e.class_iou                # absent from both: undefined, not 1.0


def test_real_mask_against_itself_is_perfect(tax, ccp_mask):
    lm = ccp_mask("0003")
    e = correction_effort(lm, lm, tax, image_id="0003", model_version="v1")
    assert e.changed_px == 0 and e.changed_fraction == 0.0
    assert e.boundary_f == 1.0
    present = {tax.names[c] for c in np.unique(lm)}
    assert set(e.class_iou) == present
    assert all(v == 1.0 for v in e.class_iou.values())
    assert all(v == 1.0 for v in e.class_boundary_f.values())


def test_real_mask_shifted_is_worse_the_further_it_moves(tax, ccp_mask):
    lm = ccp_mask("0003")
    one, four = (correction_effort(shifted(lm, d), lm, tax) for d in (1, 4))
    assert 0 < one.changed_fraction < four.changed_fraction
    assert one.boundary_f == pytest.approx(1.0, abs=0.02)   # 1 px: within the 2 px tolerance (border aside)
    assert four.boundary_f < 0.8                            # 4 px: edges no longer match
    assert four.mean_iou < one.mean_iou < 1.0
    assert four.class_iou["shoes"] < one.class_iou["shoes"] < 1.0


def test_aggregate_by_model_version_and_class():
    records = [
        {"model_version": "v1", "changed_fraction": 0.1, "boundary_f": 0.9, "mean_iou": 0.8,
         "class_iou": {"top": 0.8, "shoes": 0.6}, "class_boundary_f": {"top": 0.9, "shoes": 0.7}},
        {"model_version": "v1", "changed_fraction": 0.3, "boundary_f": 0.7, "mean_iou": 0.6,
         "class_iou": {"top": 0.6}, "class_boundary_f": {"top": 0.5}},
        {"model_version": "v2", "changed_fraction": 0.05, "boundary_f": 0.95, "mean_iou": None,
         "class_iou": {}, "class_boundary_f": {}},
    ]
    out = aggregate(records)
    assert sorted(out) == ["v1", "v2"]
    v1 = out["v1"]
    assert v1["images"] == 2
    assert v1["changed_fraction"] == pytest.approx(0.2) and v1["boundary_f"] == pytest.approx(0.8)
    assert v1["classes"]["top"] == {"iou": pytest.approx(0.7), "boundary_f": pytest.approx(0.7), "count": 2}
    assert v1["classes"]["shoes"] == {"iou": pytest.approx(0.6), "boundary_f": pytest.approx(0.7), "count": 1}
    assert out["v2"]["mean_iou"] is None and out["v2"]["classes"] == {}


def test_aggregate_accepts_effort_objects(tax):
    a = np.zeros((20, 20), np.uint8)
    b = a.copy()
    b[0:10, 0:10] = tax.class_id("bag")
    efforts = [correction_effort(a, a, tax, model_version="m"), correction_effort(a, b, tax, model_version="m"),
               correction_effort(a, a, tax)]
    out = aggregate(efforts)
    assert out["m"]["images"] == 2 and out["m"]["changed_fraction"] == pytest.approx(0.125)  # (0 + 100/400) / 2
    assert out["m"]["classes"]["bag"]["count"] == 1
    assert out["unknown"]["images"] == 1
