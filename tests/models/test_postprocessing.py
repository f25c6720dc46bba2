"""The fast post-processing gives exactly the labels of the reference (every channel upsampled, argmax),
and the table-driven normalisation of to_input exactly the arithmetic one.

`logits_to_labels` interpolates only where a 2x2 cell of model pixels is mixed and asks cv2 itself
about near-ties; these tests hold it to pixel equality with `logits_to_labels_reference` on real
model logits of CCP photos and on logits built to break it: exact and one-ulp ties, one-pixel
regions, noise, quantised values, odd sizes, whole-number, fractional and unit scale factors.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from service.drafting.predictor import Predictor
from tests.conftest import DEFAULT_MODEL
from models import preprocessing as pp
from models import upsample_argmax as ua
from models.images import decode_image

# (h, w) of the logits -> (H, W) of the image: fractional, whole-number (3x, where samples fall on
# source pixels), barely larger, one-pixel-wide and equal sizes, and a downscale (reference path).
SIZES = [((7, 5), (31, 23)), ((16, 12), (48, 36)), ((16, 12), (47, 37)), ((64, 48), (65, 49)),
         ((5, 7), (11, 13)), ((3, 3), (20, 20)), ((1, 9), (4, 30)), ((9, 1), (30, 4)), ((1, 1), (5, 5)),
         ((5, 7), (5, 7)), ((32, 32), (20, 20)), ((40, 30), (97, 61))]


def _smooth(rng, classes: int, h: int, w: int) -> np.ndarray:
    coarse = rng.standard_normal((classes, max(h // 4, 1) + 1, max(w // 4, 1) + 1)).astype(np.float32) * 5
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in coarse]).astype(np.float32)


def _adversarial(rng, classes: int, h: int, w: int) -> dict[str, np.ndarray]:
    smooth = _smooth(rng, classes, h, w)
    cases = {"smooth": smooth, "noise": rng.standard_normal((classes, h, w)).astype(np.float32),
             "quantised": np.round(rng.standard_normal((classes, h, w)) * 2).astype(np.float32) / 2,
             "all equal": np.zeros((classes, h, w), np.float32),
             "huge": (rng.standard_normal((classes, h, w)) * 1e4).astype(np.float32),
             "tiny": (rng.standard_normal((classes, h, w)) * 1e-6).astype(np.float32)}
    twins = smooth.copy()
    twins[1] = twins[0]  # two classes tied everywhere
    cases["twins"] = twins
    ulp = smooth.copy()
    ulp[-1] = np.nextafter(smooth[0], np.float32(np.inf))  # one ulp above class 0 everywhere
    cases["one ulp apart"] = ulp
    near = smooth.copy()
    near[1] = smooth[0] + np.float32(1e-7) * rng.standard_normal((h, w)).astype(np.float32)
    cases["near ties"] = near
    dot = np.full((classes, h, w), -3, np.float32)
    dot[0] = 0
    dot[-1, rng.integers(h), rng.integers(w)] = 1  # a one-pixel region
    cases["one pixel"] = dot
    tie = dot.copy()
    tie[-1][tie[-1] == 1] = 0  # the one pixel exactly tied with the background
    cases["one pixel tie"] = tie
    checker = np.zeros((classes, h, w), np.float32)
    checker[1] = (np.indices((h, w)).sum(axis=0) % 2) * 2 - 1
    cases["checkerboard"] = checker
    return cases


def _assert_same(logits: np.ndarray, size: tuple[int, int], what: str, exact_confidence: bool = False) -> None:
    ref_labels, ref_conf = pp.logits_to_labels_reference(logits, size)
    labels, conf = pp.logits_to_labels(logits, size)
    assert labels.shape == size and labels.dtype == np.uint8
    assert np.array_equal(labels, ref_labels), f"{what}: {(labels != ref_labels).sum()} pixels differ"
    if exact_confidence:  # the same operations in the same order (numpy may sum tiny arrays pairwise)
        assert np.array_equal(conf, ref_conf), what
    else:
        np.testing.assert_allclose(conf, ref_conf, rtol=1e-6, atol=1e-7, err_msg=what)


@pytest.fixture(scope="module")
def photo_logits(ccp) -> list[tuple[np.ndarray, tuple[int, int]]]:
    predictor = Predictor(DEFAULT_MODEL, backend="onnx", threads=1, verify=False)
    paths = sorted((ccp / "images").glob("*.jpg"))[::150][:6]
    out = []
    for path in paths:
        image = decode_image(path)
        out.append((predictor.backend.run(predictor.preprocess(image)[None])[0], image.shape[:2]))
    return out


def test_equal_to_reference_on_ccp_photos(photo_logits):
    for logits, size in photo_logits:
        top, second, low = pp._top_two(logits)
        # The fast path applies (no fallback) and gives the reference's labels, pixel for pixel.
        assert ua.upsampled_argmax(logits, top, second, low, *size) is not None
        _assert_same(logits, size, f"photo {size}", exact_confidence=True)
        # Other output sizes of the same logits, including non-integer and whole-number factors.
        h, w = logits.shape[1:]
        for out in ((2 * h + 1, 2 * w - 1), (3 * h, 3 * w), (h + 1, w + 3)):
            _assert_same(logits, out, f"photo logits to {out}")


def test_near_ties_on_photos_are_settled_by_cv2(photo_logits, monkeypatch):
    calls = []
    real = ua._settle_with_cv2
    monkeypatch.setattr(ua, "_settle_with_cv2", lambda *a: calls.append(a[2].size) or real(*a))
    logits, size = photo_logits[0]
    tied = logits.copy()
    # Make two classes exactly equal over a band: every boundary sample in it is a tie.
    tied[3, 100:140] = tied[1, 100:140]
    _assert_same(tied, size, "tied band")
    assert calls and sum(calls) > 0


@pytest.mark.parametrize("lift_limits", [False, True], ids=["default", "no fallback"])
@pytest.mark.parametrize("classes", [2, 13])
def test_equal_to_reference_on_adversarial_logits(classes, lift_limits, monkeypatch):
    if lift_limits:
        # Without the give-way limits, every case runs the fast path's own branches to the end.
        monkeypatch.setattr(ua, "_MAX_MIXED_SHARE", 2.0)
        monkeypatch.setattr(ua, "_MAX_NEAR_TIE_SHARE", 1e9)
        monkeypatch.setattr(ua, "_MAX_SETTLE_ROUNDS", 10**6)
    rng = np.random.default_rng(classes + 10 * lift_limits)
    for (h, w), size in SIZES:
        for what, logits in _adversarial(rng, classes, h, w).items():
            _assert_same(logits, size, f"{what} {(h, w)} -> {size}")


def test_unit_scale_is_the_plain_argmax():
    logits = np.random.default_rng(3).standard_normal((13, 24, 16)).astype(np.float32)
    logits[5, 0, 0] = logits[2, 0, 0] = 50  # a tie keeps the lower id
    labels, _ = pp.logits_to_labels(logits, (24, 16))
    assert np.array_equal(labels, logits.argmax(axis=0)) and labels[0, 0] == 2


def test_non_finite_logits_take_the_reference_path():
    for bad in (np.nan, np.inf, -np.inf):
        logits = np.zeros((3, 4, 4), np.float32)
        logits[1, 1, 1] = bad
        top, second, low = pp._top_two(logits)
        assert ua.upsampled_argmax(logits, top, second, low, 9, 9) is None
        with np.errstate(invalid="ignore"):
            ref, _ = pp.logits_to_labels_reference(logits, (9, 9))
            labels, _ = pp.logits_to_labels(logits, (9, 9))
        assert np.array_equal(labels, ref)


def test_source_coords_match_cv2():
    # The sampling positions and weights are cv2's: interpolating with them reproduces cv2.resize
    # up to float rounding, for fractional, whole-number and near-unit factors.
    rng = np.random.default_rng(4)
    for n_in, n_out in ((256, 550), (384, 830), (12, 36), (384, 385), (7, 31), (1, 5)):
        src = rng.standard_normal((2, n_in)).astype(np.float32)
        ref = cv2.resize(src, (n_out, 2), interpolation=cv2.INTER_LINEAR)
        i0, i1, frac, _ = ua._source_coords(n_out, n_in)
        ours = src[:, i0] * (1 - frac) + src[:, i1] * frac
        assert np.abs(ours - ref).max() < 1e-4


def test_to_input_lookup_table_equals_the_arithmetic(ccp):
    # to_input normalises uint8 pixels through a 256-entry table per channel: bit for bit the same.
    rng = np.random.default_rng(5)
    photo = decode_image(sorted((ccp / "images").glob("*.jpg"))[0])
    for image, size, mean, std in ((photo, (384, 256), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                                   (photo, (1024, 704), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                                   (rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), (64, 96), (0, 0, 0), (1, 1, 1))):
        h, w = size
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_LINEAR)
        x = resized.astype(np.float32) * (1.0 / 255.0)
        x -= np.asarray(mean, dtype=np.float32)
        x /= np.asarray(std, dtype=np.float32)
        got = pp.to_input(image, size, mean, std)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert np.array_equal(got, x.transpose(2, 0, 1))
