"""QA checks on drawn label maps with hand-computed answers, and on real CCP masks."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.review.checks import (CHECKS, Flag, batch_checklist, checklist, disagreement, empty_margins,
    flag_overlay_png, islands, left_right, missing_classes, overlaps, run_checks)
from service.thresholds import QAThresholds

THR = QAThresholds()


def test_every_check_is_described():
    assert set(CHECKS) == {"empty_margins", "islands", "overlaps", "missing_classes", "disagreement", "left_right"}
    for check in CHECKS.values():
        assert check.description.endswith(".") and len(check.description) > 30


# --- empty_margins ------------------------------------------------------------------------------------

def test_sliver_between_two_garments(tax):
    lm = np.zeros((60, 60), np.uint8)
    lm[10:50, 10:30] = tax.class_id("top")
    lm[10:50, 32:50] = tax.class_id("outerwear")   # 2 px gap at x 30, 31 over rows 10..49
    flags = empty_margins(lm, tax, THR)
    # The closing (5x5 ellipse) fills the gap except its first and last rows, where the kernel pokes out
    # into open background: rows 11..48 x 2 columns = 76 px.
    assert len(flags) == 1
    f = flags[0]
    assert (f.area, f.bbox) == (76, (30, 11, 32, 49))
    assert set(f.classes) == {"top", "outerwear"} and "between" in f.message


def test_wide_gaps_and_notches_of_one_garment_are_not_slivers(tax):
    lm = np.zeros((60, 60), np.uint8)
    lm[10:50, 10:30] = tax.class_id("top")
    lm[10:50, 36:50] = tax.class_id("outerwear")   # 6 px gap: wider than margin_max_width_px (4)
    assert empty_margins(lm, tax, THR) == []
    lm = np.zeros((60, 60), np.uint8)
    lm[10:50, 10:50] = tax.class_id("top")
    lm[10:30, 29:31] = 0                            # notch open to the outside, one garment around it
    assert empty_margins(lm, tax, THR) == []


def test_small_enclosed_hole_is_flagged_big_one_is_not(tax):
    lm = np.zeros((60, 60), np.uint8)
    lm[10:50, 10:50] = tax.class_id("top")
    lm[20:23, 20:28] = 0                            # 3 x 8 = 24 px forgotten inside the top
    flags = empty_margins(lm, tax, THR)
    assert [(f.area, f.bbox, f.classes) for f in flags] == [(24, (20, 20, 28, 23), ("top",))]
    assert "enclosed" in flags[0].message
    lm[20:23, 20:28] = tax.class_id("top")
    lm[15:35, 15:35] = 0                            # 400 px hole: real background (arm akimbo)
    assert empty_margins(lm, tax, THR) == []


# --- islands ------------------------------------------------------------------------------------------

def test_islands_by_area_and_by_fraction(tax):
    lm = np.zeros((100, 100), np.uint8)
    pants = tax.class_id("pants")
    lm[10:30, 10:30] = pants                        # 400 px
    lm[50:65, 50:60] = pants                        # 150 px: >= 40 px and >= 2 % of 400: a real part
    lm[80:83, 80:83] = pants                        # 9 px speck
    lm[90:93, 5:8] = tax.class_id("accessory")      # alone in its class: a small class, not an island
    flags = islands(lm, tax, THR)
    assert [(f.classes, f.area, f.bbox) for f in flags] == [(("pants",), 9, (80, 80, 83, 83))]
    big = np.zeros((120, 120), np.uint8)
    big[0:100, 0:100] = tax.class_id("outerwear")   # 10 000 px: 2 % is 200
    big[105:120, 105:115] = tax.class_id("outerwear")  # 150 px: over 40 px but under 2 % -> island
    assert [f.area for f in islands(big, tax, THR)] == [150]


def test_island_on_a_real_mask_found_at_the_speck(tax, ccp_mask):
    lm = ccp_mask("0002")
    assert (lm[3:12, 3:12] == 0).all(), "speck site must be clear background"
    before = {f.bbox for f in islands(lm, tax, THR)}
    lm[5:10, 5:10] = tax.class_id("shoes")          # 25 px of shoes far from the real shoes
    found = [f for f in islands(lm, tax, THR) if f.bbox not in before]
    assert [(f.classes, f.area, f.bbox) for f in found] == [(("shoes",), 25, (5, 5, 10, 10))]


# --- overlaps -----------------------------------------------------------------------------------------

def test_overlaps_between_layers(tax):
    top, outer, bag = (np.zeros((20, 20), bool) for _ in range(3))
    top[0:10, 0:10] = True
    outer[5:15, 5:15] = True
    bag[15:20, 15:20] = True
    flags = overlaps({"top": top, "outerwear": outer, "bag": bag}, tax, THR)
    assert [(f.classes, f.area, f.bbox, f.severity) for f in flags] == [(("top", "outerwear"), 25, (5, 5, 10, 10),
                                                                        "error")]
    acc = np.zeros((20, 20), bool)
    acc[8:12, 8:12] = True                           # inside outerwear, partly inside top too
    # Overlap = (5..9)^2 [25] + accessory's 16 px - their shared (8..9)^2 [4] = 37 px, one region.
    flags = overlaps({3: top, 4: outer, 12: acc}, tax, THR)
    assert [(set(f.classes), f.area, f.bbox) for f in flags] == [({"top", "outerwear", "accessory"}, 37,
                                                                  (5, 5, 12, 12))]
    assert overlaps({"top": top, "bag": bag}, tax, THR) == []


# --- missing_classes and disagreement ------------------------------------------------------------------

def test_missing_class_needs_confidence_and_area(tax):
    shoes = tax.class_id("shoes")
    draft = np.zeros((40, 40), np.uint8)
    draft[10:30, 10:40] = shoes                      # 600 px
    corr = np.zeros_like(draft)
    conf = np.full(draft.shape, 0.9, np.float32)
    flags = missing_classes(corr, draft, conf, tax, THR)
    assert [(f.classes, f.area, f.bbox, f.severity) for f in flags] == [(("shoes",), 600, (10, 10, 40, 30), "error")]
    assert missing_classes(corr, draft, np.full_like(conf, 0.7), tax, THR) == []   # not confident
    conf[:] = 0.5
    conf[10:20] = 0.9                                # 10 x 30 = 300 confident px: exactly the minimum
    assert len(missing_classes(corr, draft, conf, tax, THR)) == 1
    conf[19] = 0.5                                   # 270: below it
    assert missing_classes(corr, draft, conf, tax, THR) == []
    corr[0, 0] = shoes                               # present in the correction at all: not missing
    assert missing_classes(corr, draft, np.full_like(conf, 0.9), tax, THR) == []


def test_disagreement_pants_marked_legwear(tax):
    draft = np.zeros((40, 40), np.uint8)
    draft[:, 10:30] = tax.class_id("pants")          # 800 px
    corr = draft.copy()
    corr[:, 10:30] = tax.class_id("legwear")
    conf = np.full(draft.shape, 0.95, np.float32)
    flags = disagreement(corr, draft, conf, tax, THR)
    assert [(f.classes, f.area, f.bbox) for f in flags] == [(("pants", "legwear"), 800, (10, 0, 30, 40))]
    assert "0.95" in flags[0].message
    assert disagreement(corr, draft, np.full_like(conf, 0.5), tax, THR) == []
    erased = np.zeros_like(draft)                    # annotator erased the pants: an ordinary correction
    assert disagreement(erased, draft, conf, tax, THR) == []
    with_bg = QAThresholds(disagreement_include_background=True)
    assert [f.classes for f in disagreement(erased, draft, conf, tax, with_bg)] == [("pants", "background")]
    corr[:, 10:30] = tax.class_id("pants")
    corr[0:10, 10:20] = tax.class_id("legwear")      # 100 px: below the 300 px minimum
    assert disagreement(corr, draft, conf, tax, THR) == []


# --- left_right -----------------------------------------------------------------------------------------

def test_three_shoe_parts(tax):
    lm = np.zeros((100, 100), np.uint8)
    lm[10:60, 30:70] = tax.class_id("top")
    for x0 in (10, 40, 70):
        lm[85:95, x0:x0 + 15] = tax.class_id("shoes")
    flags = left_right(lm, tax, THR)
    assert [(f.message, f.area, f.bbox) for f in flags] == [
        ("shoes has 3 separate parts; a pair has at most two", 450, (10, 85, 85, 95))]


def test_two_shoes_on_the_same_side(tax):
    c = tax.class_id
    lm = np.zeros((100, 100), np.uint8)
    lm[10:60, 30:70] = c("top")
    lm[60:85, 33:45] = c("legwear")                  # image-left leg ends above its shoes
    lm[60:100, 70:80] = c("legwear")                 # image-right leg reaches the floor, no shoe
    lm[85:100, 30:37] = c("shoes")                   # both shoes under the image-left leg
    lm[85:100, 39:46] = c("shoes")
    # Rows 85..99 hold shoes at x 30..36 and 39..45 (105 px each) and the leg at x 70..79 (150 px):
    # 10th percentile x = 32, 90th = 77, centre 54.5; shoe centroids 33 and 42 are both more than
    # 6 px to its image-left: both on the person's right.
    flags = left_right(lm, tax, THR)
    assert [(f.classes, f.message) for f in flags] == [(("shoes",), "both shoes parts lie on the person's right side")]
    lm[85:100, 30:46] = 0
    lm[85:100, 33:45] = c("shoes")                   # one shoe under each leg instead
    lm[85:100, 70:80] = c("shoes")
    assert left_right(lm, tax, THR) == []


# --- run_checks, overlay, checklist ----------------------------------------------------------------------

def test_run_checks_with_a_draft_on_a_real_mask(tax, ccp_mask):
    corr = ccp_mask("0004")                          # has shoes (one 5728 px part), no socks
    conf = np.ones(corr.shape, np.float32)
    assert not [f for f in run_checks(corr, corr, conf) if f.check in ("missing_classes", "disagreement")]
    draft = corr.copy()
    shoes = corr == tax.class_id("shoes")
    draft[shoes] = tax.class_id("socks")             # the draft called the shoes socks
    flags = run_checks(corr, draft, conf)
    missing = [f for f in flags if f.check == "missing_classes"]
    assert [(f.classes, f.area) for f in missing] == [(("socks",), int(shoes.sum()))]
    assert [(f.classes, f.area) for f in flags if f.check == "disagreement"] == [(("socks", "shoes"), 5728)]
    with pytest.raises(ValueError, match="draft has shape"):
        run_checks(corr, draft[:-1])


def test_flag_overlay_png_highlights_the_flagged_pixels(tax, ccp_mask, ccp_image):
    lm = np.zeros((100, 100), np.uint8)
    lm[10:30, 10:30] = tax.class_id("pants")
    lm[80:83, 80:83] = tax.class_id("pants")
    (flag,) = islands(lm, tax, THR)
    png = flag_overlay_png(flag, lm)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    # Crop x, y 68..94 (27 px, 12 px pad) enlarged to 128 px; its centre is the speck.
    assert img.shape == (128, 128, 3)
    r, g, b = (int(v) for v in img[64, 64])
    assert r > 150 and g < 60 and b > 200              # pants blue tinted magenta: (180, 32, 243)
    assert tuple(img[2, 2]) == (0, 0, 0)             # background away from the flag stays untouched
    real = ccp_mask("0002")
    real[5:10, 5:10] = tax.class_id("shoes")
    flag = next(f for f in islands(real, tax, THR) if f.bbox == (5, 5, 10, 10))
    png = flag_overlay_png(flag, real, ccp_image("0002"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(png)).size[0] >= 128


def _flag(check, classes=("top",), bbox=(0, 0, 1, 1), resolved=False):
    return Flag(check, tuple(classes), "m", bbox, 1, "warning", resolved)


def test_checklist_counts_resolved_and_missing():
    flags = [_flag("empty_margins"), _flag("empty_margins", bbox=(5, 5, 6, 6), resolved=True),
             _flag("islands"), _flag("missing_classes", ("shoes",))]
    cl = checklist(flags, resolved_keys=[flags[2].key])
    assert (cl["flags_total"], cl["flags_resolved"], cl["flags_open"]) == (4, 2, 2)
    assert cl["by_check"]["empty_margins"] == {"total": 2, "resolved": 1, "open": 1}
    assert (cl["no_margins"], cl["no_islands"], cl["clean_overlaps"]) == (False, True, True)
    assert (cl["all_segments_present"], cl["missing_segments"], cl["passed"]) == (False, ["shoes"], False)
    done = checklist(flags, resolved_keys=[f.key for f in flags])
    assert done["passed"] and done["flags_open"] == 0
    asked = checklist([], expected_classes=["bag", "shoes"], present_classes=["shoes", "top"])
    assert (asked["all_segments_present"], asked["missing_segments"]) == (False, ["bag"])
    batch = batch_checklist({"a": cl, "b": done, "c": asked})
    assert (batch["images"], batch["passed"], batch["failing"]) == (3, 1, ["a", "c"])
    assert batch["failing_by_criterion"]["all_segments_present"] == 2
    assert batch["by_check"]["empty_margins"] == {"total": 4, "resolved": 3, "open": 1}
    assert batch["pass_rate"] == pytest.approx(1 / 3)
