"""Inter-annotator agreement: drawn maps with exact answers, real masks, the overlay and batch means."""
from __future__ import annotations

import numpy as np
import pytest

from service.review.agreement import aggregate_agreement, agreement, disagreement_overlay


def two_annotators(tax):
    a = np.zeros((20, 20), np.uint8)
    a[0:10, 0:10] = tax.class_id("top")
    b = a.copy()
    b[0:10, 5:10] = tax.class_id("outerwear")        # b calls the top's right half outerwear
    return a, b


def test_drawn_agreement(tax):
    a, b = two_annotators(tax)
    r = agreement(a, b, tax, image_id="i1", annotators=("ann", "bob"))
    assert r.pixel_agreement == pytest.approx(350 / 400)
    assert r.class_iou == {"background": 1.0, "top": pytest.approx(50 / 100), "outerwear": 0.0}
    assert r.mean_iou == pytest.approx(0.25)         # (0.5 + 0.0) / 2, background left out
    assert r.class_boundary_f["outerwear"] == 0.0    # b drew an outerwear edge a never drew
    assert r.class_boundary_f["background"] == 1.0   # the person's outline is the same for both
    assert 0.5 < r.boundary_f < 1.0                  # same outline, one extra edge at x = 5 (4 px off)
    assert r.to_dict()["annotators"] == ["ann", "bob"]


def test_agreement_is_symmetric(tax, ccp_mask):
    a = ccp_mask("0015")
    b = a.copy()
    b[a == tax.class_id("pants")] = tax.class_id("legwear")
    b[400:420, :] = 0
    ab, ba = agreement(a, b, tax), agreement(b, a, tax)
    assert ab.pixel_agreement == ba.pixel_agreement
    assert ab.class_iou == ba.class_iou
    assert ab.boundary_f == pytest.approx(ba.boundary_f)


def test_real_mask_with_itself_and_with_a_class_swapped(tax, ccp_mask):
    a = ccp_mask("0003")
    same = agreement(a, a, tax)
    assert same.pixel_agreement == 1.0 and same.boundary_f == 1.0
    assert all(v == 1.0 for v in same.class_iou.values())
    b = a.copy()
    shoes = a == tax.class_id("shoes")
    b[shoes] = tax.class_id("socks")
    r = agreement(a, b, tax)
    assert r.pixel_agreement == pytest.approx(1 - shoes.sum() / a.size)
    assert r.class_iou["shoes"] == 0.0 and r.class_iou["socks"] == 0.0
    assert r.class_iou["pants"] == 1.0
    assert r.class_boundary_f["pants"] == 1.0


def test_disagreement_overlay_colours(tax):
    a, b = two_annotators(tax)
    over = disagreement_overlay(a, b)
    assert over.shape == (20, 20, 3) and over.dtype == np.uint8
    # Differing pixels: a's top colour (230, 60, 60) mixed 25/75 with magenta -> (249, 15, 206).
    assert (over[0:10, 5:10] == (249, 15, 206)).all()
    assert (over[0:10, 0:5] == (127, 33, 33)).all()  # agreed top, dimmed to 55 %
    assert (over[10:, :] == 0).all()                 # agreed background stays black
    photo = np.full((20, 20, 3), 100, np.uint8)
    over = disagreement_overlay(a, b, image=photo)
    assert (over[0:10, 5:10] == (216, 25, 216)).all() and (over[0:10, 0:5] == 55).all()
    with pytest.raises(ValueError, match="second map has shape"):
        disagreement_overlay(a, b[:-1])


def test_aggregate_agreement_overall_and_by_pair(tax):
    a, b = two_annotators(tax)
    results = [agreement(a, b, tax, annotators=("ann", "bob")),
               agreement(a, a, tax, annotators=("bob", "ann")).to_dict(),   # same pair, other order
               agreement(a, a, tax, annotators=("bob", "cy"))]
    out = aggregate_agreement(results)
    assert out["images"] == 3
    assert out["pixel_agreement"] == pytest.approx((0.875 + 1 + 1) / 3)
    assert out["classes"]["top"] == {"iou": pytest.approx((0.5 + 1 + 1) / 3), "boundary_f": pytest.approx(
        (results[0].class_boundary_f["top"] + 2) / 3), "count": 3}
    assert out["classes"]["outerwear"]["count"] == 1
    assert sorted(out["by_pair"]) == ["ann & bob", "bob & cy"]
    assert out["by_pair"]["ann & bob"]["images"] == 2
    assert out["by_pair"]["ann & bob"]["pixel_agreement"] == pytest.approx(0.9375)
