"""The batch report of a worklist: gathers QA, effort, agreement and class counts from the store into a
ReportInput, then service.review.report renders the self-contained HTML and its PNG charts.
Photos without a correction are listed with their draft (so the report shows what is still open).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sqlalchemy.orm import Session

from service.review.annotator_agreement import disagreement_png, worklist_agreement
from service.review.checklist import batch_checklist
from service.review.effort import aggregate
from service.review.effort_records import effort_records
from service.review.item_qa import item_qa
from service.review.report.build import write_report
from service.review.report.charts import render_charts
from service.review.report.data import (BatchInfo, DisagreementSample, ImageRow, ReportInput, class_distribution,
    effort_timeline, flag_dicts)
from service.review.report.html import render_html
from service.review.report.thumbs import overlay_thumbnail
from service.review.stored_maps import item_draft, photo, taxonomy_for
from service.store.files import FileStore
from service.store.tables import Worklist
from service.thresholds import QAThresholds

MAX_DISAGREEMENT_SAMPLES = 4


def worklist_report_input(session: Session, files: FileStore, wl: Worklist,
                          thresholds: QAThresholds = QAThresholds()) -> ReportInput:
    tax = taxonomy_for(wl.taxonomy)
    rows, finals, checklists = [], [], {}
    counts = {"images": len(wl.items), "corrected": 0, "approved": 0, "awaiting correction": 0}
    for item in wl.items:
        qa = item_qa(session, files, item, thresholds)
        corr = qa.correction
        final = qa.pair.final if qa.pair is not None else None
        if corr is None:
            counts["awaiting correction"] += 1
        else:
            counts["corrected"] += 1
            counts["approved"] += corr.status == "approved"
            finals.append(final)
            checklists[item.image_id] = qa.checklist
        shown = final if final is not None else item_draft(files, item)
        present = [tax.names[c] for c in np.flatnonzero(np.bincount(shown.ravel(), minlength=tax.num_classes)) if c]
        rows.append(ImageRow(
            image_id=item.image_id, width=item.image.width, height=item.image.height,
            annotator=(corr.annotator if corr else None) or item.annotator, reviewer=corr.reviewer if corr else None,
            qa_status=item.qa_status, notes=" | ".join(n for n in (item.notes, corr.notes if corr else None) if n),
            draft_model_version=wl.model_version, classes=present, difficulty=item.difficulty,
            difficulty_reason=item.reason, effort=qa.effort.to_dict() if qa.effort else None,
            checklist=qa.checklist, flags=flag_dicts(qa.flags, item.resolved_flags or []),
            overlay_png=overlay_thumbnail(photo(files, item), shown, tax.palette())))
    pixels, images = class_distribution(finals, tax.names)
    records = effort_records(session, files, worklist=wl, thresholds=thresholds)
    agree = worklist_agreement(session, files, wl, thresholds)
    samples = []
    for pair in sorted(agree["pairs"], key=lambda p: p["pixel_agreement"])[:MAX_DISAGREEMENT_SAMPLES]:
        item = next(i for i in wl.items if i.image_id == pair["image_id"])
        a, b = pair["annotators"]
        samples.append(DisagreementSample(item.image_id, (a, b), disagreement_png(session, files, item, a, b),
                                          pair["pixel_agreement"]))
    batch = BatchInfo(id=str(wl.id), name=wl.name, created_at=wl.created_at, model_version=wl.model_version,
                      taxonomy=wl.taxonomy, annotators=list(wl.annotators), counts=counts)
    return ReportInput(batch=batch, class_names=tax.names, palette=tax.palette().tolist(), class_pixels=pixels,
                       class_images=images, images=rows, effort=aggregate(records),
                       effort_over_time=effort_timeline((r["date"], r) for r in records),
                       agreement=agree["summary"], disagreement_samples=samples,
                       batch_checklist=batch_checklist(checklists) if checklists else None)


def write_worklist_report(session: Session, files: FileStore, wl: Worklist, out_dir: Path,
                          thresholds: QAThresholds = QAThresholds(), overwrite: bool = False) -> Path:
    """report.html (self-contained) and charts/*.png in out_dir; returns the HTML file's path."""
    return write_report(worklist_report_input(session, files, wl, thresholds), out_dir, overwrite=overwrite)


def worklist_report_html(session: Session, files: FileStore, wl: Worklist,
                         thresholds: QAThresholds = QAThresholds()) -> str:
    data = worklist_report_input(session, files, wl, thresholds)
    return render_html(data, render_charts(data))
