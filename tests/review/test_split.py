"""Worklist: effort formula, difficulty reasons, the balanced split, its rows, and draft measurements."""
from __future__ import annotations

import numpy as np
import pytest

from service.review.split import DraftInfo, difficulty_reason, draft_info, predicted_effort_s, share_totals, split_batch

EIGHT = {n: 1000 for n in ("skin", "hair", "top", "outerwear", "pants", "shoes", "bag", "accessory")}


def test_predicted_effort_formula():
    info = DraftInfo("x", EIGHT, 100_000, uncertain_fraction=0.10, small_regions=5, boundary_px=4000)
    # 20 base + 8 classes x 6 + 10 % x 4 + 5 small x 3 + 40 hundred px x 0.5 = 20 + 48 + 40 + 15 + 20
    assert predicted_effort_s(info) == pytest.approx(143.0)
    assert predicted_effort_s(DraftInfo("y", {"background": 99_000}, 100_000)) == 20.0  # background not a class


def test_difficulty_reason():
    info = DraftInfo("x", {"skin": 5000, "top": 20000, "socks": 150, "shoes": 1500}, 100_000,
                     uncertain_fraction=0.12)
    # Small garment: under 0.2 % of 100 000 = 200 px; skin is not a garment.
    assert difficulty_reason(info) == "uncertain 12% of pixels; rare classes: socks; small garments: socks (150 px)"
    freq = {"skin": 1.0, "top": 0.05, "socks": 0.5, "shoes": 0.99}
    assert difficulty_reason(info, class_frequency=freq).split("; ")[1] == "rare classes: top"
    easy = DraftInfo("e", {"top": 20000, "shoes": 1500}, 100_000, uncertain_fraction=0.01)
    assert difficulty_reason(easy) == "confident draft, common classes"


def _info(image_id, seconds, difficulty):
    # No classes, nothing uncertain: effort = 20 + 0.5 * boundary / 100, so boundary = (s - 20) * 200.
    return DraftInfo(image_id, {}, 100_000, difficulty=difficulty, boundary_px=int((seconds - 20) * 200))


def test_split_balances_effort_and_orders_hardest_first():
    infos = [_info("e100", 100, 0.2), _info("e90", 90, 0.1), _info("e60", 60, 0.3), _info("e50", 50, 0.5),
             _info("e40", 40, 0.9), _info("e30", 30, 0.3)]
    out = split_batch(infos, ["ann", "bob"])
    # LPT: 100 -> ann, 90 -> bob, 60 -> bob (90 < 100), 50 -> ann (100 < 150), 40 -> ann (tie 150/150,
    # first listed), 30 -> bob (180 vs 190): ann 100 + 50 + 40 = 190 s, bob 90 + 60 + 30 = 180 s.
    assert share_totals(out) == {"ann": {"images": 3, "predicted_s": 190.0}, "bob": {"images": 3, "predicted_s": 180.0}}
    # Within a share, hardest first (ties: longer first).
    assert [a.image_id for a in out if a.annotator == "ann"] == ["e40", "e50", "e100"]
    assert [a.image_id for a in out if a.annotator == "bob"] == ["e60", "e30", "e90"]
    assert [a.position for a in out if a.annotator == "bob"] == [1, 2, 3]


def test_split_respects_capacity():
    infos = [_info(f"i{k}", 50, 0.5) for k in range(6)]
    out = split_batch(infos, ["ann", "bob"], capacity={"bob": 2.0})
    # Finish times (load / capacity): bob, ann (tie, listed first), bob, bob, ann (tie), bob.
    assert share_totals(out) == {"ann": {"images": 2, "predicted_s": 100.0}, "bob": {"images": 4, "predicted_s": 200.0}}
    with pytest.raises(ValueError):
        split_batch(infos, [])
    with pytest.raises(ValueError):
        split_batch(infos, ["ann"], capacity={"ann": 0})


def test_split_rows_hold_what_the_worklist_csv_lists(tax, ccp_mask):
    """Per photo: annotator, classes present, difficulty, why it is hard (and the predicted seconds), QA state."""
    infos = [draft_info(i, ccp_mask(i), np.full(ccp_mask(i).shape, 0.9, np.float32)) for i in ("0001", "0002")]
    rows = {a.image_id: a for a in split_batch(infos, ["ann"])}
    assert len(rows) == 2
    row = rows["0002"]
    assert ";".join(row.classes_present) == "skin;hair;outerwear;dress;socks;shoes"
    assert row.annotator == "ann" and row.qa_status == "pending"
    assert f"{row.difficulty:.4f}" == "0.1000"
    assert "rare classes: socks" in row.notes and row.notes.endswith(" s")


def test_draft_info_drawn():
    draft = np.zeros((50, 50), np.uint8)
    draft[5:25, 5:25] = 3                            # top, 400 px: not below 400, not small
    draft[30:40, 5:15] = 10                          # two 100 px shoes: two small regions
    draft[30:40, 30:40] = 10
    conf = np.full(draft.shape, 0.9, np.float32)
    conf[0:10, 0:50] = 0.3                           # 500 uncertain px of 2500
    info = draft_info("d", draft, conf)
    assert info.class_areas == {"top": 400, "shoes": 200}
    assert info.small_regions == 2
    # Gradient pixels: 20 x 20 square 76 inner + 80 outer, each 10 x 10 square 36 + 40 -> 308 // 2.
    assert info.boundary_px == 154
    assert info.uncertain_fraction == pytest.approx(0.2)
    assert info.difficulty == pytest.approx(1 - (0.9 * 2000 + 0.3 * 500) / 2500)
    assert draft_info("d", draft).difficulty == 0.0  # no confidence: nothing to say


def test_draft_info_real(tax, ccp_mask):
    lm = ccp_mask("0001")
    info = draft_info("0001", lm, np.ones(lm.shape, np.float32), tax)
    assert sum(info.class_areas.values()) + int((lm == 0).sum()) == lm.size
    assert info.classes() == ["skin", "hair", "top", "outerwear", "skirt", "legwear", "shoes", "accessory"]
    assert info.uncertain_fraction == 0.0 and info.small_regions >= 1 and info.boundary_px > 1000
