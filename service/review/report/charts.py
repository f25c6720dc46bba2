"""PNG charts of the batch report, drawn on matplotlib Figures (no pyplot, no display, no global backend).
Each chart has a test for whether there is anything to draw; without data it is skipped and the
HTML says why, rather than showing an empty axis that reads like a bug.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import NamedTuple

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from service.review.report.data import ReportInput
from service.review.report.derive import effort_by_class, flag_counts

RESOLVED, OPEN = "#2e9d57", "#d64545"       # green / red: resolved flags, open flags
METRIC_A, METRIC_B = "#3b6fb6", "#e08a2c"   # two neutral hues for IoU and boundary F, not class colours
EDGE = "#444444"                            # bar outline, so pale class colours (accessory) stay visible


# Applied while each chart is drawn (rc_context), never to the process's matplotlib defaults.
STYLE = {"font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 11,
         "axes.titleweight": "bold"}


def _subplots(*grid: int, figsize: tuple[float, float], **kw):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kw)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _rgb(data: ReportInput, name: str) -> tuple[float, float, float]:
    return tuple(v / 255 for v in data.color(name))


def _garments(data: ReportInput) -> list[str]:
    """Classes other than background present in the final masks, most pixels first."""
    names = [n for n in data.class_names[1:] if data.class_pixels.get(n, 0) > 0]
    return sorted(names, key=lambda n: -data.class_pixels[n])


def _fmt_px(v: float) -> str:
    return f"{v / 1e6:.1f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e3 else f"{v:.0f}"


# --- class distribution ------------------------------------------------------------------------------
def _class_distribution_missing(data: ReportInput) -> str | None:
    return None if _garments(data) else "The final masks hold no garment pixels (background only)."


def _class_distribution(data: ReportInput) -> bytes:
    names = _garments(data)[::-1]          # barh draws bottom-up: put the largest class on top
    colours = [_rgb(data, n) for n in names]
    total = sum(data.class_pixels[n] for n in names)
    n_images = len(data.images) or max(data.class_images.values(), default=0)
    fig, (ax1, ax2) = _subplots(1, 2, figsize=(10, 0.32 * len(names) + 1.1), sharey=True)
    px = [data.class_pixels[n] for n in names]
    ax1.barh(names, px, color=colours, edgecolor=EDGE, linewidth=0.6)
    for y, v in enumerate(px):
        ax1.text(v, y, f" {_fmt_px(v)} ({100 * v / total:.0f}%)", va="center", fontsize=9)
    ax1.set_title("pixels (share of garment pixels)")
    ax1.set_xlim(0, max(px) * 1.35)
    ax1.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_px(v)))
    im = [data.class_images.get(n, 0) for n in names]
    ax2.barh(names, im, color=colours, edgecolor=EDGE, linewidth=0.6)
    for y, v in enumerate(im):
        ax2.text(v, y, f" {v}", va="center", fontsize=9)
    ax2.set_title(f"images holding the class (of {n_images})")
    ax2.set_xlim(0, max(max(im), n_images, 1) * 1.12)
    ax2.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    return _png(fig)


# --- QA flags ------------------------------------------------------------------------------------------
def _qa_flags_missing(data: ReportInput) -> str | None:
    counts = flag_counts(data)
    return None if any(c["total"] for c in counts.values()) else "No QA flag was raised in this batch."


def _qa_flags(data: ReportInput) -> bytes:
    counts = flag_counts(data)
    names = list(counts)[::-1]
    resolved = [counts[n]["resolved"] for n in names]
    still_open = [counts[n]["open"] for n in names]
    fig, ax = _subplots(figsize=(9, 0.34 * len(names) + 1.2))
    ax.barh(names, resolved, color=RESOLVED, label="resolved")
    ax.barh(names, still_open, left=resolved, color=OPEN, label="open")
    top = max(r + o for r, o in zip(resolved, still_open))
    for y, (r, o) in enumerate(zip(resolved, still_open)):
        if r + o:
            ax.text(r + o, y, f" {r + o} raised: {r} resolved, {o} open", va="center", fontsize=9)
    ax.set_xlim(0, top * 1.6)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("flags")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _png(fig)


# --- correction effort ---------------------------------------------------------------------------------
def _effort_by_class_missing(data: ReportInput) -> str | None:
    return None if effort_by_class(data) else "No image had a model draft to compare its final mask with."


def _iou_bf(data: ReportInput, per: dict[str, dict], between: str, xlabel: str) -> bytes:
    """Paired bars of IoU and boundary F per class (worst IoU on top), class colour behind each name."""
    per = {c: v for c, v in per.items() if c != data.class_names[0]} or per   # background says little
    names = sorted(per, key=lambda c: -per[c]["iou"])   # bottom-up: the worst class ends on top
    y = range(len(names))
    fig, ax = _subplots(figsize=(10, 0.4 * len(names) + 1.3))
    iou = [per[c]["iou"] for c in names]
    bf = [per[c].get("boundary_f") or 0.0 for c in names]
    ax.barh([i + 0.2 for i in y], iou, height=0.38, color=METRIC_A, label=f"IoU {between}")
    ax.barh([i - 0.2 for i in y], bf, height=0.38, color=METRIC_B, label=f"boundary F {between}")
    for i, (a, b) in enumerate(zip(iou, bf)):
        ax.text(a, i + 0.2, f" {a:.2f}", va="center", fontsize=8)
        ax.text(b, i - 0.2, f" {b:.2f}", va="center", fontsize=8)
    ax.set_yticks(list(y), [f"{c} (n={per[c]['count']})" for c in names])
    for tick, c in zip(ax.get_yticklabels(), names):   # a class-colour swatch behind each name
        tick.set_bbox({"facecolor": _rgb(data, c), "alpha": 0.35, "edgecolor": "none", "pad": 1.5})
    ax.set_xlim(0, 1.12)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _png(fig)


def _effort_by_class(data: ReportInput) -> bytes:
    return _iou_bf(data, effort_by_class(data), "draft vs final", "1.0 = the draft needed no change")


def _effort_by_version_missing(data: ReportInput) -> str | None:
    ok = [v for v in data.effort.values() if v.get("changed_fraction") is not None]
    return None if ok else "No corrected draft names its model version."


def _effort_by_version(data: ReportInput) -> bytes:
    versions = [v for v, s in data.effort.items() if s.get("changed_fraction") is not None]
    changed = [100 * data.effort[v]["changed_fraction"] for v in versions]
    fig, ax = _subplots(figsize=(5.2, 0.5 * len(versions) + 1.3))
    ax.barh(versions[::-1], changed[::-1], color=METRIC_A)
    for y, v in enumerate(versions[::-1]):
        ax.text(100 * data.effort[v]["changed_fraction"], y,
                f" {100 * data.effort[v]['changed_fraction']:.1f}% (n={data.effort[v]['images']})",
                va="center", fontsize=9)
    ax.set_xlim(0, max(changed) * 1.5 or 1)
    ax.set_xlabel("pixels the annotator changed (mean %)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return _png(fig)


def _effort_over_time_missing(data: ReportInput) -> str | None:
    days = {str(p.date) for p in data.effort_over_time}
    return None if len(days) > 1 else "Corrections of this batch span a single day: no trend to show."


def _effort_over_time(data: ReportInput) -> bytes:
    days = sorted({str(p.date) for p in data.effort_over_time})
    x = {d: i for i, d in enumerate(days)}
    fig, ax = _subplots(figsize=(10, 3.0))
    for version in sorted({p.model_version for p in data.effort_over_time}):
        pts = sorted((x[str(p.date)], 100 * p.changed_fraction, p.n) for p in data.effort_over_time
                     if p.model_version == version)
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=version)
        for px, py, n in pts:
            ax.annotate(f"{py:.1f}% (n={n})", (px, py), textcoords="offset points", xytext=(0, 7), ha="center",
                        fontsize=8, color=line.get_color())
    crowded = len(days) > 6                            # slant the dates only when they would collide
    ax.set_xticks(range(len(days)), days, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylabel("changed pixels (mean %)")
    ax.grid(alpha=0.3)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)           # room for the labels above the highest points
    ax.legend(title="model version", frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


# --- agreement -----------------------------------------------------------------------------------------
def _agreement_missing(data: ReportInput) -> str | None:
    if not data.agreement or not data.agreement.get("images"):
        return "No image was corrected by two annotators, so there is no agreement to measure."
    return None if data.agreement.get("classes") else "The double-annotated images hold no classes."


def _agreement(data: ReportInput) -> bytes:
    return _iou_bf(data, data.agreement["classes"], "annotator vs annotator", "1.0 = both drew the same")


class Chart(NamedTuple):
    title: str
    missing: Callable[[ReportInput], str | None]   # None when there is data, else why the chart is skipped
    draw: Callable[[ReportInput], bytes]


CHARTS: dict[str, Chart] = {
    "class_distribution": Chart("Class distribution", _class_distribution_missing, _class_distribution),
    "qa_flags": Chart("QA flags by check", _qa_flags_missing, _qa_flags),
    "effort_by_class": Chart("Correction effort by class", _effort_by_class_missing, _effort_by_class),
    "effort_by_version": Chart("Correction effort by model version", _effort_by_version_missing,
                               _effort_by_version),
    "effort_over_time": Chart("Correction effort over time", _effort_over_time_missing, _effort_over_time),
    "agreement_by_class": Chart("Agreement between annotators by class", _agreement_missing, _agreement),
}


def skip_reason(name: str, data: ReportInput) -> str | None:
    """Why chart `name` has nothing to show for `data`, or None when it is drawn."""
    return CHARTS[name].missing(data)


def render_charts(data: ReportInput) -> dict[str, bytes]:
    """{chart name: PNG bytes} for every chart with data; skipped ones are simply absent."""
    with rc_context(STYLE):
        return {name: c.draw(data) for name, c in CHARTS.items() if c.missing(data) is None}
