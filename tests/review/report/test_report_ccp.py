"""The report on six real CCP photos: the CCP mask is the final, a perturbed copy the draft, and the
real QA functions produce effort, flags and checklists (tests/review/report/ccp_batch.py)."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from service.review.report.derive import flag_counts
from tests.review.report.ccp_batch import ccp_ids, load_final
from tests.review.report.htmlq import Doc


def test_class_table_matches_the_ccp_masks(ccp_report, ccp_input, tax):
    finals = [load_final(i, tax) for i in ccp_ids(6)]
    t = Doc(ccp_report.read_text()).table("classes")
    for c, name in enumerate(tax.names):
        # Counted here independently of class_distribution: pixels equal to c, images holding any.
        assert t[name][1] == f"{sum(int((f == c).sum()) for f in finals):,}", name
        assert t[name][4] == str(sum(bool((f == c).any()) for f in finals)), name
    assert sum(int(t[n][1].replace(",", "")) for n in tax.names) == sum(f.size for f in finals)


def test_the_known_draft_mistakes_show_up(ccp_input):
    by_image = {r.image_id: r for r in ccp_input.images}
    first, second = ccp_ids(2)
    # Draft 0 called the legwear pants; draft 1 had a bag the photo lacks: the real checks catch both.
    assert any(f["check"] == "disagreement" and f["classes"] == ["pants", "legwear"] for f in by_image[first].flags)
    assert any(f["check"] == "missing_classes" and f["classes"] == ["bag"] for f in by_image[second].flags)
    # v1 drafts were perturbed by 4 px, v2 by 2 px: the effort by version must say v1 cost more.
    v1, v2 = ccp_input.effort["v1"], ccp_input.effort["v2"]
    assert v1["changed_fraction"] > v2["changed_fraction"] and v1["mean_iou"] < v2["mean_iou"]


def test_report_totals_agree_with_the_rows(ccp_report, ccp_input):
    doc = Doc(ccp_report.read_text())
    flags = doc.table("flags")
    counts = flag_counts(ccp_input)
    n_flags = sum(len(r.flags) for r in ccp_input.images)
    n_open = sum(not f["resolved"] for r in ccp_input.images for f in r.flags)
    assert n_flags > 0 and 0 < n_open < n_flags
    assert sum(int(flags[c][2]) for c in counts) == n_flags
    assert sum(int(flags[c][4]) for c in counts) == n_open
    assert len(doc.tables["flags"][1]) - 1 == n_open                     # one row per open flag, plus header
    assert ccp_input.batch_checklist["flags_open"] == n_open
    versions = doc.table("effort", 1)
    assert versions["v1"][2] == f"{100 * ccp_input.effort['v1']['changed_fraction']:.1f}%"


def test_hardest_first_and_every_image_decodes(ccp_report, ccp_input):
    html = ccp_report.read_text()
    diff = {r.image_id: r.difficulty for r in ccp_input.images}
    shown = [i for i in diff if f'<div class="id">{i}</div>' in html]
    order = sorted(shown, key=lambda i: html.index(f'<div class="id">{i}</div>'))
    assert len(order) == 6 and [diff[i] for i in order] == sorted(diff.values(), reverse=True)
    imgs = Doc(html).imgs()
    assert len(imgs) == 6 + 6 + 6 + 2          # charts, hardest, gallery, disagreement overlays
    for a in imgs:
        im = Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        assert min(im.size) > 50 and np.asarray(im.convert("L")).std() > 5, a["alt"]   # not a flat image
    assert len(html) < 1_500_000               # thumbnails are re-encoded: mail-sized for a batch
