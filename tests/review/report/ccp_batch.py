"""A report input built from real CCP photos: the CCP mask is the annotator's final mask, a perturbed
copy of it plays the model's draft, and the real service.review functions measure effort, flags,
checklists, difficulty and agreement. `python -m tests.report.ccp_batch OUT` writes an example.
"""
from __future__ import annotations

import io
import sys
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from models.images import decode_image, read_label_map
from models.taxonomy import Taxonomy, load_taxonomy
from service.review.agreement import aggregate_agreement, agreement, disagreement_overlay
from service.review.checklist import batch_checklist, checklist
from service.review.checks import run_checks
from service.review.effort import aggregate, correction_effort
from service.review.report.data import (BatchInfo, DisagreementSample, ImageRow, ReportInput, class_distribution,
    effort_timeline, flag_dicts)
from service.review.report.thumbs import overlay_thumbnail
from service.review.split import difficulty_reason, draft_info
from tests.conftest import CCP

ANNOTATORS = ("ana", "bo", "chen")
DAYS = ("2025-03-03", "2025-03-04", "2025-03-05")


def ccp_ids(n: int) -> list[str]:
    return sorted(p.stem for p in (CCP / "masks").glob("*.png"))[:n]


def load_final(image_id: str, tax: Taxonomy) -> np.ndarray:
    lut = tax.lut_for_labels((CCP / "labels.txt").read_text().splitlines())
    return lut[read_label_map(CCP / "masks" / f"{image_id}.png")]


def _morph(mask: np.ndarray, r: int, grow: bool) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    op = cv2.dilate if grow else cv2.erode
    return op(mask.astype(np.uint8), k) > 0


def make_draft(final: np.ndarray, index: int, tax: Taxonomy) -> np.ndarray:
    """A plausible model draft: outlines off by a few px, and one typical mistake per image.

    v1 drafts (even index) are sloppier than v2 drafts, so effort by model version differs.
    """
    draft = final.copy()
    r = 4 if index % 2 == 0 else 2
    for k, c in enumerate(np.unique(final)):
        if c == 0:
            continue
        grow = k % 2 == 0
        region = _morph(final == c, r, grow)
        draft[region & (draft == 0) if grow else (final == c) & ~region] = c if grow else 0
    mistake = index % 4
    if mistake == 0 and (final == tax.class_id("legwear")).any():
        draft[final == tax.class_id("legwear")] = tax.class_id("pants")       # pants for legwear
    elif mistake == 1:
        h, w = final.shape
        draft[h // 2: h // 2 + 30, 10:40] = tax.class_id("bag")               # a bag that is not there
    elif mistake == 2:
        draft[final == tax.class_id("shoes")] = 0                               # shoes missed entirely
    return draft


def confidence_for(draft: np.ndarray) -> np.ndarray:
    """Model-like confidence: low near the draft's class edges, high inside regions."""
    edges = cv2.morphologyEx(draft, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    dist = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)
    return (1.0 - 0.5 * np.exp(-dist / 6.0)).astype(np.float32)


def second_opinion(final: np.ndarray, tax: Taxonomy) -> np.ndarray:
    """Another annotator's mask of the same photo: shoes drawn generously, hair tighter."""
    other = final.copy()
    shoes, hair = tax.class_id("shoes"), tax.class_id("hair")
    other[_morph(final == shoes, 3, True) & (final == 0)] = shoes
    other[(final == hair) & ~_morph(final == hair, 3, False)] = 0
    return other


def _png(rgb: np.ndarray, max_side: int = 360) -> bytes:
    im = Image.fromarray(rgb)
    im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def build_input(n: int = 6, tax: Taxonomy | None = None) -> ReportInput:
    tax = tax or load_taxonomy("fashion-13")
    rows, finals, efforts, timeline, pairs, samples = [], [], [], [], [], []
    for i, image_id in enumerate(ccp_ids(n)):
        photo, final = decode_image(CCP / "images" / f"{image_id}.jpg"), load_final(image_id, tax)
        draft = make_draft(final, i, tax)
        version = "v1" if i % 2 == 0 else "v2"
        conf = confidence_for(draft)
        info = draft_info(image_id, draft, conf, tax)
        effort = correction_effort(draft, final, tax, image_id=image_id, model_version=version).to_dict()
        layers = {tax.names[c]: final == c for c in np.unique(final) if c != 0}
        if i == 3:   # a layered export where the top layer was painted over the pants: overlaps
            top = next(name for name in ("top", "outerwear", "dress") if name in layers)
            layers[top] = _morph(layers[top], 3, True)
        flags = run_checks(final, draft, conf, layers=layers, taxonomy=tax)
        # The annotator ticked off every other flag (sorted by key, so the choice is deterministic).
        resolved = sorted(f.key for f in flags)[::2]
        fl = flag_dicts(flags, resolved)
        present = [tax.names[c] for c in np.unique(final) if c != 0]
        cl = checklist(flags, resolved, expected_classes=["shoes"], present_classes=present)
        annotator = ANNOTATORS[i % len(ANNOTATORS)]
        rows.append(ImageRow(
            image_id=image_id, width=final.shape[1], height=final.shape[0], annotator=annotator,
            reviewer="rita" if i % 3 else None, qa_status=("approved", "submitted", "rejected")[i % 3],
            notes=f"checked by {annotator}" if i % 2 else "", draft_model_version=version, classes=present,
            difficulty=info.difficulty, difficulty_reason=difficulty_reason(info), effort=effort,
            checklist=cl, flags=fl, overlay_png=overlay_thumbnail(photo, final, tax.palette())))
        finals.append(final)
        efforts.append(effort)
        timeline.append((DAYS[i % len(DAYS)], effort))
        if i < 2:    # two photos were corrected twice, independently
            other = second_opinion(final, tax)
            pairs.append(agreement(final, other, tax, image_id=image_id, annotators=(annotator, "dana")))
            samples.append(DisagreementSample(image_id, (annotator, "dana"),
                                              _png(disagreement_overlay(final, other, photo)),
                                              pairs[-1].pixel_agreement))
    pixels, images = class_distribution(finals, tax.names)
    counts = {"images": len(rows), **{s: sum(r.qa_status == s for r in rows)
                                      for s in ("approved", "submitted", "rejected")}}
    return ReportInput(
        batch=BatchInfo(id="ccp-demo-01", name="CCP street photos, March batch",
                        created_at=datetime(2025, 3, 3, 9, 30, tzinfo=timezone.utc), model_version="v2",
                        taxonomy=tax.tag, annotators=[*ANNOTATORS, "dana"], counts=counts),
        class_names=tax.names, palette=tax.palette(), class_pixels=pixels, class_images=images, images=rows,
        effort=aggregate(efforts), effort_over_time=effort_timeline(timeline),
        agreement=aggregate_agreement(pairs), disagreement_samples=samples,
        batch_checklist=batch_checklist({r.image_id: r.checklist for r in rows}),
        generated_at=datetime(2025, 3, 6, 17, 0, tzinfo=timezone.utc))


if __name__ == "__main__":
    from service.review.report.build import write_report

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/report_example")
    print(write_report(build_input(int(sys.argv[2]) if len(sys.argv) > 2 else 6), out, overwrite=True))
