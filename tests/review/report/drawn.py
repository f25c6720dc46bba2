"""A two-image batch drawn by hand, so every number the report shows is known in advance.

a-01 (10 x 10): top rows 0-2 (30 px), pants rows 3-4 (20 px), background 50 px; its v1 draft called
the pants legwear (20 of 100 px changed). b-02 (20 x 10): pants rows 0-4 (50 px), shoes row 5 (10 px),
background 140 px; its v2 draft was perfect. a-01 has one flag, resolved; b-02 one, open.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from service.review.checklist import batch_checklist, checklist
from service.review.effort import aggregate, correction_effort
from service.review.flags import Flag
from service.review.report.data import (BatchInfo, ImageRow, ReportInput, class_distribution, effort_timeline,
    flag_dicts)
from service.review.report.thumbs import overlay_thumbnail

SCRIPT_NOTE = '<script>alert("pwned")</script> & more'
EVIL_NAME = "<b>eve</b>"
URL_NOTE = "see https://example.com/guide for the rule"


def drawn_maps(tax) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({image_id: final}, {image_id: draft})."""
    top, pants, shoes, legwear = (tax.class_id(n) for n in ("top", "pants", "shoes", "legwear"))
    a = np.zeros((10, 10), np.uint8)
    a[0:3] = top
    a[3:5] = pants
    b = np.zeros((20, 10), np.uint8)
    b[0:5] = pants
    b[5] = shoes
    draft_a = a.copy()
    draft_a[3:5] = legwear
    return {"a-01": a, "b-02": b}, {"a-01": draft_a, "b-02": b.copy()}


def drawn_input(tax, **overrides) -> ReportInput:
    finals, drafts = drawn_maps(tax)
    islands = Flag("islands", ("top",), "stray top fragment of 4 px (largest part 26 px)", (0, 0, 2, 2), 4,
                   "warning")
    overlap = Flag("overlaps", ("pants", "shoes"), "6 px claimed by pants and shoes", (0, 4, 6, 6), 6, "error")
    flags = {"a-01": flag_dicts([islands], resolved_keys=[islands.key]), "b-02": flag_dicts([overlap])}
    checklists = {"a-01": checklist([islands], [islands.key]), "b-02": checklist([overlap])}
    versions = {"a-01": "v1", "b-02": "v2"}
    efforts = {i: correction_effort(drafts[i], finals[i], tax, image_id=i, model_version=versions[i]).to_dict()
               for i in finals}
    photo = np.full((10, 10, 3), 200, np.uint8)
    rows = [
        ImageRow("a-01", 10, 10, annotator=EVIL_NAME, reviewer="rita", qa_status="approved", notes=SCRIPT_NOTE,
                 draft_model_version="v1", classes=["top", "pants"], difficulty=0.7,
                 difficulty_reason="uncertain 40% of pixels", effort=efforts["a-01"], checklist=checklists["a-01"],
                 flags=flags["a-01"], overlay_png=overlay_thumbnail(photo, finals["a-01"], tax.palette())),
        ImageRow("b-02", 10, 20, annotator="bo", qa_status="submitted", notes=URL_NOTE, draft_model_version="v2",
                 classes=["pants", "shoes"], difficulty=0.2, difficulty_reason="confident draft, common classes",
                 effort=efforts["b-02"], checklist=checklists["b-02"], flags=flags["b-02"]),
    ]
    pixels, images = class_distribution(finals.values(), tax.names)
    fields = dict(
        batch=BatchInfo("batch-7", "Drawn batch", datetime(2025, 1, 2, 3, 4, tzinfo=timezone.utc), "v2", tax.tag,
                        [EVIL_NAME, "bo"], {"images": 2, "approved": 1}),
        class_names=tax.names, palette=tax.palette(), class_pixels=pixels, class_images=images, images=rows,
        effort=aggregate(efforts.values()),
        effort_over_time=effort_timeline([("2025-01-02T10:00", e) for e in efforts.values()]),
        agreement=None, batch_checklist=batch_checklist(checklists),
        generated_at=datetime(2025, 1, 3, tzinfo=timezone.utc))
    fields.update(overrides)
    return ReportInput(**fields)
