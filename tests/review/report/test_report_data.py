"""The report's input helpers: class distribution from label maps, flag resolution, the effort timeline,
and the checks that reject inconsistent input before anything is drawn."""
from __future__ import annotations

import numpy as np
import pytest

from service.review.flags import Flag
from service.review.report.data import ReportInput, class_distribution, effort_timeline, flag_dicts
from service.review.report.derive import effort_by_class, hardest
from tests.review.report.drawn import drawn_input, drawn_maps


def test_class_distribution_counts_pixels_and_images(tax):
    finals, _ = drawn_maps(tax)
    # A generator: the app streams masks from the store one at a time.
    pixels, images = class_distribution((m for m in finals.values()), tax.names)
    assert {k: v for k, v in pixels.items() if v} == {"background": 190, "top": 30, "pants": 70, "shoes": 10}
    assert {k: v for k, v in images.items() if v} == {"background": 2, "top": 1, "pants": 2, "shoes": 1}
    assert set(pixels) == set(tax.names) and pixels["legwear"] == 0 and images["legwear"] == 0


def test_class_distribution_refuses_ids_outside_the_taxonomy(tax):
    lm = np.zeros((4, 4), np.uint8)
    lm[0, 0] = tax.num_classes + 2
    with pytest.raises(ValueError, match=str(tax.num_classes + 2)):
        class_distribution([lm], tax.names)


def test_flag_dicts_resolve_by_ticked_key_or_own_flag():
    a = Flag("islands", ("top",), "m", (0, 0, 1, 1), 1, "warning")
    b = Flag("overlaps", ("pants", "shoes"), "m", (1, 1, 2, 2), 1, "error")
    c = Flag("islands", ("bag",), "m", (2, 2, 3, 3), 1, "warning", resolved=True)
    out = flag_dicts([a, b.to_dict(), c], resolved_keys=[a.key])
    assert [f["resolved"] for f in out] == [True, False, True]
    assert out[1]["key"] == b.key and out[1]["check"] == "overlaps"


def test_effort_timeline_groups_by_day_and_version():
    recs = [("2025-01-02T09:00", {"model_version": "v1", "changed_fraction": 0.2}),
            ("2025-01-02T17:00", {"model_version": "v1", "changed_fraction": 0.4}),
            ("2025-01-03", {"model_version": "v1", "changed_fraction": 0.1}),
            ("2025-01-02", {"model_version": None, "changed_fraction": 0.5})]
    pts = effort_timeline(recs)
    assert [(p.date, p.model_version, p.n) for p in pts] == [
        ("2025-01-02", "unknown", 1), ("2025-01-02", "v1", 2), ("2025-01-03", "v1", 1)]
    assert pts[1].changed_fraction == pytest.approx(0.3)


def test_report_input_rejects_short_palette_and_unknown_classes(tax):
    with pytest.raises(ValueError, match="palette"):
        drawn_input(tax, palette=tax.palette()[:3])
    with pytest.raises(ValueError, match="gown"):
        drawn_input(tax, class_pixels={"gown": 5})


def test_effort_by_class_weights_versions_by_image_count(tax):
    effort = {"v1": {"images": 1, "changed_fraction": 0.1, "classes": {"top": {"iou": 1.0, "boundary_f": 1.0,
                                                                                "count": 1}}},
              "v2": {"images": 3, "changed_fraction": 0.3, "classes": {"top": {"iou": 0.2, "boundary_f": 0.6,
                                                                                "count": 3}}}}
    per = effort_by_class(drawn_input(tax, effort=effort))
    assert per["top"]["iou"] == pytest.approx(0.4)        # (1.0 * 1 + 0.2 * 3) / 4, not (1.0 + 0.2) / 2
    assert per["top"]["boundary_f"] == pytest.approx(0.7)
    assert per["top"]["count"] == 4


def test_hardest_orders_by_difficulty_then_changed_pixels(drawn):
    assert [r.image_id for r in hardest(drawn, 5)] == ["a-01", "b-02"]
    assert [r.image_id for r in hardest(drawn, 1)] == ["a-01"]
    for r in drawn.images:
        r.difficulty = None                            # no confidence maps: the most corrected comes first
    drawn.images.reverse()
    assert [r.image_id for r in hardest(drawn, 5)] == ["a-01", "b-02"]


def test_palette_is_normalised_to_rgb_tuples(drawn, tax):
    assert isinstance(drawn, ReportInput)
    assert drawn.color("pants") == tuple(int(v) for v in tax.palette()[tax.class_id("pants")])
    assert drawn.color("no-such-class") == (128, 128, 128)
