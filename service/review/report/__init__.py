"""Batch summary report: one self-contained HTML file (charts and thumbnails inline) plus PNG charts.
worklist.py fills a ReportInput (data.py) from the store, then write_report(data, out_dir); the QA numbers
it shows come from service.review, this package only summarises and draws them.
"""
from service.review.report.build import write_report
from service.review.report.charts import render_charts
from service.review.report.data import (BatchInfo, DisagreementSample, EffortPoint, ImageRow, ReportInput,
    class_distribution, effort_timeline, flag_dicts)
from service.review.report.html import render_html
from service.review.report.thumbs import overlay_thumbnail

__all__ = ["BatchInfo", "DisagreementSample", "EffortPoint", "ImageRow", "ReportInput", "class_distribution",
           "effort_timeline", "flag_dicts", "overlay_thumbnail", "render_charts", "render_html", "write_report"]
