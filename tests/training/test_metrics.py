"""Metric arithmetic on drawn label maps with answers worked out by hand.

IoU sums intersections and unions over the dataset first; classes absent from the ground truth
are reported as None and left out of the mean.
"""
import numpy as np
import pytest

from training.metrics import confusion, scores

NAMES = ["bg", "a", "b", "c"]


def test_hand_computed_scores():
    truth = np.zeros((4, 5), np.uint8)
    truth[:, 3:] = 1          # 8 pixels of a
    pred = truth.copy()
    pred[0, 3] = 2            # one a pixel predicted b (b absent from truth)
    pred[3, 0] = 1            # one bg pixel predicted a
    r = scores(confusion(truth, pred, 4), NAMES)
    # bg: tp 11, gt 12, pred 11 -> 11/12 ; a: tp 7, gt 8, pred 8 -> 7/9
    assert r["per_class"]["bg"] == pytest.approx(11 / 12)
    assert r["per_class"]["a"] == pytest.approx(7 / 9)
    assert r["per_class"]["b"] is None and r["per_class"]["c"] is None
    assert r["miou"] == pytest.approx((11 / 12 + 7 / 9) / 2)
    assert r["pixel_accuracy"] == pytest.approx(18 / 20)
    assert r["changed_pixel_fraction"] == pytest.approx(2 / 20)


def test_sums_over_images_before_dividing():
    # image 1: a tiny 'a' region missed; image 2: a large 'a' region found. Per-image IoU would average 0.5.
    t1 = np.zeros((2, 2), np.uint8)
    t1[0, 0] = 1
    p1 = np.zeros_like(t1)
    t2 = np.ones((10, 10), np.uint8)
    conf = confusion(t1, p1, 4) + confusion(t2, t2.copy(), 4)
    assert scores(conf, NAMES)["per_class"]["a"] == pytest.approx(100 / 101)


def test_ignore_pixels_do_not_count():
    truth = np.array([[255, 1], [1, 0]], np.uint8)
    pred = np.array([[2, 1], [1, 0]], np.uint8)
    r = scores(confusion(truth, pred, 4), NAMES)
    assert r["pixel_accuracy"] == 1.0 and r["pixels"] == 3
