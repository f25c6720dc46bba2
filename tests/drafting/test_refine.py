"""Refining a draft with clicks, negative clicks and strokes over kept logits, on drawn cases with known
answers and on CCP photos with the default model; region alternatives; the bounded cache.

Drawn logits are built at half the photo's size, as the model's are at a fraction of it.
"""
from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from service.drafting.refine import EditError, Paint, Refinement, parse_edits, refine
from service.drafting.scores import PhotoScores, RefineCache, region_alternatives
from tests.conftest import CCP, DEFAULT_MODEL, REPO

NAMES = ("background", "top", "dress", "skirt", "bag")
BG, TOP, DRESS, SKIRT, BAG = range(5)
H, W = 120, 160


def drawn(levels: dict[int, float], regions: list[tuple[tuple[slice, slice], dict[int, float]]],
          image: np.ndarray | None = None) -> PhotoScores:
    """Logits at (H/2, W/2): `levels` everywhere, then each region (slices in photo pixels) its own."""
    logits = np.zeros((len(NAMES), H // 2, W // 2), dtype=np.float32)
    for c, v in levels.items():
        logits[c] = v
    for (ys, xs), values in regions:
        for c, v in values.items():
            logits[c, ys.start // 2:ys.stop // 2, xs.start // 2:xs.stop // 2] = v
    return PhotoScores(logits, (H, W), NAMES, image)


def interior(ys: slice, xs: slice, inset: int = 2) -> tuple[slice, slice]:
    """The slices less a rim where the upsampled logits blend with the neighbours'."""
    return slice(ys.start + inset, ys.stop - inset), slice(xs.start + inset, xs.stop - inset)


def outside(ys: slice, xs: slice, inset: int = 2) -> np.ndarray:
    mask = np.ones((H, W), dtype=bool)
    mask[max(0, ys.start - inset):ys.stop + inset, max(0, xs.start - inset):xs.stop + inset] = False
    return mask


BOX = (slice(30, 90), slice(40, 120))


def test_a_class_margin_is_its_logit_over_the_best_other_class_upsampled():
    logits = np.random.default_rng(3).standard_normal((len(NAMES), 15, 20)).astype(np.float32)
    logits[:, 0, 0] = 1.0  # a tie everywhere at one pixel: every class's margin is 0 there
    scores = PhotoScores(logits, (45, 61), NAMES)
    for c in range(len(NAMES)):
        expected = logits[c] - np.delete(logits, c, axis=0).max(axis=0)
        assert np.allclose(scores.margin(c), cv2.resize(expected, (61, 45), interpolation=cv2.INTER_LINEAR),
                           atol=1e-5)
    assert not (scores.labels_without(int(scores.draft()[20, 30])) == scores.draft())[20, 30]


def test_a_click_flips_a_drafted_region_to_the_clicked_class():
    scores = drawn({BG: 5.0}, [(BOX, {BG: 0.0, DRESS: 3.0, SKIRT: 2.0})])
    draft = scores.draft()
    assert (draft[interior(*BOX)] == DRESS).all()
    out = refine(scores, [{"x": 80, "y": 60, "class": "skirt"}])
    assert (out[interior(*BOX)] == SKIRT).all()
    assert (out[outside(*BOX)] == BG).all()


def test_a_click_grows_over_the_probabilities_beyond_the_drafted_outline():
    left, right = (slice(30, 90), slice(20, 80)), (slice(30, 90), slice(80, 140))
    # One skirt drafted as two garments: the skirt is close behind both, and far behind nothing else.
    scores = drawn({BG: 5.0}, [(left, {BG: 0.0, DRESS: 3.0, SKIRT: 2.5}), (right, {BG: 0.0, TOP: 3.0, SKIRT: 2.8})])
    out = refine(scores, [{"x": 40, "y": 60, "class": "skirt"}])
    assert (out[interior(*left)] == SKIRT).all()
    assert (out[interior(*right)] == SKIRT).all()
    assert (out[outside(slice(30, 90), slice(20, 140))] == BG).all()


def test_a_click_on_the_background_does_not_flood_the_photo():
    blob = (slice(20, 50), slice(20, 60))
    # The bag is plausible (ratio e^-1.5) on a blob and ruled out (e^-6) everywhere else.
    scores = drawn({BG: 6.0, BAG: 0.0}, [(blob, {BAG: 4.5})])
    on_blob = refine(scores, [{"x": 40, "y": 35, "class": "bag"}])
    assert (on_blob[interior(*blob)] == BAG).all()
    assert (on_blob[outside(*blob)] == BG).all()
    far = refine(scores, [{"x": 130, "y": 100, "class": "bag"}])
    taken = far == BAG
    assert taken[100, 130]
    assert 0 < taken.mean() <= 0.1 + 1e-9
    assert not taken[interior(*blob)].any()


def test_a_negative_click_hands_the_region_to_its_runner_up_or_to_the_named_class():
    scores = drawn({BG: 5.0}, [(BOX, {BG: 0.0, DRESS: 4.0, SKIRT: 3.0, TOP: 1.0})])
    out = refine(scores, [{"x": 80, "y": 60, "class": None}])
    assert (out[interior(*BOX)] == SKIRT).all()
    assert (out[outside(*BOX)] == BG).all()
    gone = refine(scores, [{"kind": "remove", "x": 80, "y": 60, "to": "background"}])
    assert (gone == BG).all()
    with pytest.raises(EditError, match="background, nothing to remove"):
        refine(scores, [{"x": 5, "y": 5, "class": None}])


def test_a_stroke_grows_over_similar_pixels_and_stops_at_a_colour_edge():
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[:, :80] = (200, 40, 40)    # red left half
    image[:, 80:] = (40, 60, 200)    # blue right half
    # The model is unsure everywhere: background first, top close behind.
    scores = drawn({BG: 2.0, TOP: 1.5}, [], image)
    stroke = {"points": [[70, 40], [70, 80]], "class": "top", "width": 3}
    out = refine(scores, [stroke])
    top = out == TOP
    assert top[40:81, 69:72].all()                       # the stroke itself
    assert top[:, :80].sum() > 20 * top[40:81, 69:72].size  # and the similar pixels around it
    assert not top[:, 80:].any()                          # not across the edge
    blind = refine(PhotoScores(scores.logits, (H, W), NAMES), [stroke])
    assert (blind == TOP)[:, 80:].any()                   # without the pixels nothing stops it there


def test_painted_pixels_grow_as_the_same_stroke_drawn_as_a_line_does():
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[:, :80] = (200, 40, 40)
    image[:, 80:] = (40, 60, 200)
    scores = drawn({BG: 2.0, TOP: 1.5}, [], image)
    line = np.zeros((H, W), dtype=np.uint8)
    cv2.polylines(line, [np.array([[70, 40], [70, 80]], dtype=np.int32)], False, 1, thickness=3)
    painted = refine(scores, [Paint(line.view(bool), TOP)])
    np.testing.assert_array_equal(painted, refine(scores, [{"points": [[70, 40], [70, 80]], "class": "top",
                                                            "width": 3}]))
    with pytest.raises(EditError, match="non-empty mask of the photo's size"):
        refine(scores, [Paint(np.zeros((H, W), dtype=bool), TOP)])
    with pytest.raises(EditError, match="non-empty mask of the photo's size"):
        refine(scores, [Paint(np.ones((H, W + 1), dtype=bool), TOP)])


def test_edits_apply_in_order_and_a_later_click_splits_an_earlier_ones_area():
    scores = drawn({BG: 5.0}, [(BOX, {BG: 0.0, DRESS: 3.0, SKIRT: 2.5, TOP: 2.5})])
    out = refine(scores, [{"x": 45, "y": 60, "class": "skirt"}, {"x": 115, "y": 60, "class": "top"}])
    assert (out[interior(*BOX)][:, :30] == SKIRT).all()    # the first click's side
    assert (out[interior(*BOX)][:, -30:] == TOP).all()     # the later click took only the part nearer to it
    once = refine(scores, [{"x": 115, "y": 60, "class": "top"}])
    assert (once[interior(*BOX)] == TOP).all()             # alone, the same click takes the whole region


@pytest.mark.parametrize("edit, message", [
    ({"x": -1, "y": 10, "class": "top"}, "outside the photo"),
    ({"x": W, "y": 10, "class": "top"}, "outside the photo"),
    ({"x": 10, "y": H + 0.5, "class": "top"}, "outside the photo"),
    ({"points": [[10, 10], [W + 3, 10]], "class": "top"}, "outside the photo"),
    ({"x": 10, "y": 10, "class": "cape"}, "unknown class 'cape'"),
    ({"points": [[10, 10]], "class": "cape"}, "unknown class"),
    ({"x": 10, "y": 10, "class": 3}, "class must be a class name"),
    ({"x": 10, "y": 10, "class": None, "to": "cape"}, "unknown class"),
    ({"y": 10, "class": "top"}, "x and y must be numbers"),
    ({"x": "10", "y": 10, "class": "top"}, "x and y must be numbers"),
    ({"x": True, "y": 10, "class": "top"}, "x and y must be numbers"),
    ({"x": float("nan"), "y": 10, "class": "top"}, "x and y must be numbers"),
    ({"x": 10, "y": 10}, "class must be a class name"),
    ({"points": [], "class": "top"}, "non-empty list"),
    ({"points": [[1, 2, 3]], "class": "top"}, "is not \\[x, y\\]"),
    ({"points": [[1, 2]], "class": "top", "width": 0}, "width"),
    ({"kind": "stroke", "x": 1, "y": 2, "class": "top"}, "does not fit"),
    ({"kind": "click", "x": 1, "y": 2, "class": None}, "does not fit"),
    ({"kind": "lasso", "x": 1, "y": 2, "class": "top"}, "unknown kind"),
    ([10, 10, "top"], "must be an object"),
    ({"x": 1, "y": 2, "clas": "top"}, "unknown fields \\['clas'\\]"),
])
def test_bad_edits_are_refused_with_the_domain_error(edit, message):
    scores = drawn({BG: 5.0}, [])
    with pytest.raises(EditError, match=message):
        refine(scores, [{"x": 1.5, "y": 2, "class": "top"}, edit])
    assert issubclass(EditError, ValueError)


def test_edits_must_be_a_list_and_a_draft_must_fit_the_photo():
    scores = drawn({BG: 5.0}, [])
    with pytest.raises(EditError, match="must be a list"):
        refine(scores, {"x": 1, "y": 1, "class": "top"})
    with pytest.raises(EditError, match="draft must be"):
        refine(scores, [], draft=np.zeros((H, W + 1), dtype=np.uint8))
    with pytest.raises(EditError, match="draft must be"):
        refine(scores, [], draft=np.full((H, W), len(NAMES), dtype=np.uint8))
    assert [type(e).__name__ for e in parse_edits([{"x": 0, "y": 0, "class": "top"},
                                                   {"x": W - 0.5, "y": H - 0.5, "class": None},
                                                   {"points": [[0, 0]], "class": "bag"}], scores)] == \
        ["Click", "Remove", "Stroke"]


def test_region_alternatives_name_each_region_and_its_runner_up():
    scores = drawn({BG: 5.0}, [(BOX, {BG: 0.0, DRESS: 2.0, SKIRT: 1.5})])
    draft = scores.draft()
    regions = region_alternatives(scores, draft)
    assert len(regions) == 1
    region = regions[0]
    expected = np.exp([0.0, 0.0, 2.0, 1.5, 0.0]) / np.exp([0.0, 0.0, 2.0, 1.5, 0.0]).sum()
    assert (region.class_name, region.runner_up) == ("dress", "skirt")
    assert region.area == (draft == DRESS).sum() > 0.99 * 60 * 80 and region.bbox == (40, 30, 80, 60)
    # The mean over the region includes its blended rim, so a little under the interior's value.
    assert expected[DRESS] - 0.03 < region.probability <= expected[DRESS] + 1e-6
    assert expected[SKIRT] - 0.03 < region.runner_up_probability <= expected[SKIRT] + 1e-6
    assert region.as_dict()["runner_up"] == "skirt"
    with_background = region_alternatives(scores, draft, include_background=True)
    assert {r.class_name for r in with_background} == {"dress", "background"}


def test_probabilities_on_a_grid_are_those_at_its_pixels_and_match_a_whole_upsampling():
    logits = np.random.default_rng(5).standard_normal((len(NAMES), 15, 20)).astype(np.float32)
    scores = PhotoScores(logits, (61, 83), NAMES)
    full = cv2.resize(np.ascontiguousarray(logits.transpose(1, 2, 0)), (83, 61), interpolation=cv2.INTER_LINEAR)
    full = np.exp(full - full.max(axis=2, keepdims=True))
    full /= full.sum(axis=2, keepdims=True)
    for step in (1, 3):
        grid = scores.probabilities_on_grid(step)
        assert grid.shape == (len(NAMES), -(-61 // step), -(-83 // step))
        np.testing.assert_allclose(grid, full[::step, ::step].transpose(2, 0, 1), atol=1e-5)
    ys, xs = np.array([0, 30, 60]), np.array([82, 41, 0])
    np.testing.assert_allclose(scores.probabilities_at(ys, xs), full[ys, xs].T, atol=1e-5)


def test_a_large_photos_alternatives_come_from_a_grid_and_thin_regions_off_it_are_still_listed():
    size = (1200, 1000)  # 1.2 megapixels: every 4th pixel of every 4th row is sampled
    logits = np.zeros((len(NAMES), 60, 50), dtype=np.float32)
    logits[BG] = 5.0
    logits[:, 10:50, 10:40] = np.array([0.0, 0.0, 2.0, 1.5, 0.0])[:, None, None]
    scores = PhotoScores(logits, size, NAMES)
    labels = scores.draft()
    labels[401, 100:900] = BAG  # a one-pixel line between the grid's rows, drawn on the label map
    regions = {r.class_name: r for r in region_alternatives(scores, labels)}
    assert set(regions) == {"dress", "bag"}
    expected = np.exp([0.0, 0.0, 2.0, 1.5, 0.0]) / np.exp([0.0, 0.0, 2.0, 1.5, 0.0]).sum()
    assert (regions["dress"].runner_up, regions["bag"].area) == ("skirt", 800)
    assert expected[DRESS] - 0.03 < regions["dress"].probability <= expected[DRESS] + 1e-6
    # Averaged over its own 800 pixels, 600 of them inside the dress and 200 on the background.
    on_background = np.exp([5.0, 0, 0, 0, 0]) / np.exp([5.0, 0, 0, 0, 0]).sum()
    assert abs(regions["bag"].probability - (600 * expected[BAG] + 200 * on_background[BAG]) / 800) < 0.003
    assert regions["bag"].runner_up == "dress"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_is_bounded_by_count_bytes_and_idle_time():
    clock = Clock()
    one = drawn({BG: 5.0}, [])
    cache = RefineCache(max_entries=2, max_bytes=3 * one.nbytes, ttl_s=60, clock=clock)
    for key in "abc":
        assert cache.put((key, "v1"), drawn({BG: 5.0}, []))
    assert cache.get(("a", "v1")) is None and len(cache) == 2      # least recently used out past 2 entries
    assert cache.get(("b", "v1")) is not None                         # b is now the most recent
    cache.put(("d", "v1"), one)
    assert cache.get(("c", "v1")) is None and cache.get(("b", "v1")) is not None
    clock.now = 61
    assert cache.get(("b", "v1")) is None and len(cache) == 0 and cache.nbytes == 0  # idle past the ttl
    small = RefineCache(max_entries=10, max_bytes=int(1.5 * one.nbytes), clock=clock)
    assert small.put("x", one) and small.put("y", drawn({BG: 5.0}, []))
    assert len(small) == 1 and small.get("x") is None                 # bytes bound
    huge = PhotoScores(np.zeros((5, H, W), np.float32), (H, W), NAMES)
    assert not small.put("z", huge) and small.get("z") is None


def test_refining_imports_neither_torch_nor_onnxruntime():
    code = ("import sys, service.drafting.refine, service.drafting.scores; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- CCP photos with the default model ------------------------------------------------------------------

@pytest.fixture(scope="module")
def ccp_photos():
    """(scores, truth) of four val photos; the model runs once per photo for the whole module."""
    from models.card import read_card
    from training.dataset import load_samples, scan_dataset
    from training.quantize import model_input, ort_session
    from models.taxonomy import Taxonomy

    card = read_card(DEFAULT_MODEL)
    taxonomy = Taxonomy.from_dict(card["taxonomy"])
    folder = scan_dataset(CCP)
    session = ort_session(DEFAULT_MODEL / "model.onnx")
    out = []
    for _, image, truth in load_samples(folder, folder.split(10.0)[1][:4], taxonomy):
        logits = session.run(None, {"image": model_input(image, card["input"])})[0][0]
        out.append((PhotoScores(logits, image.shape[:2], taxonomy.names, image), truth))
    return out


def largest_wrong_area(labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int]:
    wrong = labels != truth
    best, best_class = np.zeros_like(wrong), 0
    for c in np.unique(truth[wrong]):
        n, parts, stats, _ = cv2.connectedComponentsWithStats((wrong & (truth == c)).view(np.uint8), connectivity=4)
        part = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[part, cv2.CC_STAT_AREA] > best.sum():
            best, best_class = parts == part, int(c)
    return best, best_class


def iou(labels: np.ndarray, truth: np.ndarray, c: int) -> float:
    return float(((labels == c) & (truth == c)).sum() / ((labels == c) | (truth == c)).sum())


def miou(labels: np.ndarray, truth: np.ndarray) -> float:
    """Over the classes in the photo's ground truth."""
    return float(np.mean([iou(labels, truth, c) for c in np.unique(truth)]))


def test_a_click_with_the_true_class_on_the_largest_wrong_area_raises_the_photos_iou(ccp_photos):
    for scores, truth in ccp_photos:
        draft = scores.draft()
        area, true_class = largest_wrong_area(draft, truth)
        depth = cv2.distanceTransform(np.pad(area, 1).view(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(depth.argmax()), depth.shape)
        refinement = Refinement(scores, draft)
        started = time.perf_counter()
        refinement.apply({"x": int(x), "y": int(y), "class": scores.class_names[true_class]})
        assert time.perf_counter() - started < 1.0
        assert iou(refinement.labels, truth, true_class) > iou(draft, truth, true_class) + 0.02
        assert miou(refinement.labels, truth) > miou(draft, truth) + 0.005


def test_region_alternatives_on_a_photo_cover_its_drafted_garments(ccp_photos):
    scores, _ = ccp_photos[0]
    draft = scores.draft()
    regions = region_alternatives(scores, draft)
    assert sum(r.area for r in regions) == int((draft != 0).sum())
    for r in regions:
        # Each pixel's own class leads there, so it leads on average too (up to the blended rims).
        assert r.runner_up != r.class_name and 0 <= r.runner_up_probability <= r.probability + 0.01


def test_the_same_edits_give_the_same_labels_every_time(ccp_photos):
    scores, truth = ccp_photos[2]
    edits = []
    refinement = Refinement(scores)
    for kind in ("click", "stroke", "click", "stroke"):
        area, true_class = largest_wrong_area(refinement.labels, truth)
        ys, xs = np.nonzero(area)
        x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
        edit = {"x": x, "y": y} if kind == "click" else {"points": [[x, y], [x, min(y + 30, truth.shape[0] - 1)]]}
        edits.append({**edit, "class": scores.class_names[true_class]})
        refinement.apply(edits[-1])
    assert all(np.array_equal(refine(scores, edits), refinement.labels) for _ in range(3))
