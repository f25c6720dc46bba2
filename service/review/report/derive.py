"""Numbers the report shows that are derived from a ReportInput: flag counts per check, effort per
class over all model versions, the hardest images and the gallery sample. Shared by the charts and
the HTML so a chart and the table beside it can never disagree.
"""
from __future__ import annotations

from service.review.checklist import CHECK_NAMES
from service.review.report.data import ImageRow, ReportInput


def flag_counts(data: ReportInput) -> dict[str, dict[str, int]]:
    """{check: {"total", "resolved", "open"}} in the checks' own order.

    Counted from the image rows' flags when any row has some (the same flags the per-image table
    lists); otherwise taken from the batch checklist, so a caller that only has the totals still gets
    the table.
    """
    counts = {name: {"total": 0, "resolved": 0, "open": 0} for name in CHECK_NAMES}
    rows_have_flags = any(r.flags for r in data.images)
    if rows_have_flags:
        for r in data.images:
            for f in r.flags:
                c = counts.setdefault(f["check"], {"total": 0, "resolved": 0, "open": 0})
                c["total"] += 1
                c["resolved" if f.get("resolved") else "open"] += 1
    elif data.batch_checklist:
        for name, c in data.batch_checklist.get("by_check", {}).items():
            counts[name] = {k: int(c.get(k, 0)) for k in ("total", "resolved", "open")}
    return counts


def effort_by_class(data: ReportInput) -> dict[str, dict]:
    """{class: {"iou", "boundary_f", "count"}} over every model version, weighted by image count.

    effort.aggregate gives per-version means with counts; a plain mean of those means would let a
    version with two images weigh as much as one with two hundred.
    """
    sums: dict[str, dict[str, float]] = {}
    for summary in data.effort.values():
        for cls, v in summary.get("classes", {}).items():
            s = sums.setdefault(cls, {"iou": 0.0, "bf": 0.0, "n": 0, "n_bf": 0})
            s["iou"] += v["iou"] * v["count"]
            s["n"] += v["count"]
            if v.get("boundary_f") is not None:
                s["bf"] += v["boundary_f"] * v["count"]
                s["n_bf"] += v["count"]
    order = {n: i for i, n in enumerate(data.class_names)}
    return {cls: {"iou": s["iou"] / s["n"], "boundary_f": s["bf"] / s["n_bf"] if s["n_bf"] else None,
                  "count": int(s["n"])}
            for cls, s in sorted(sums.items(), key=lambda kv: order.get(kv[0], len(order))) if s["n"]}


def effort_overall(data: ReportInput) -> dict[str, float | None]:
    """Image-weighted means of changed fraction, mean IoU and boundary F over all versions."""
    out: dict[str, float | None] = {}
    for key in ("changed_fraction", "mean_iou", "boundary_f"):
        pairs = [(s[key], s["images"]) for s in data.effort.values() if s.get(key) is not None]
        n = sum(w for _, w in pairs)
        out[key] = sum(v * w for v, w in pairs) / n if n else None
    out["images"] = sum(s.get("images", 0) for s in data.effort.values())
    return out


def hardest(data: ReportInput, n: int) -> list[ImageRow]:
    """The n hardest images: highest difficulty first, then most changed pixels (when no difficulty)."""
    def key(r: ImageRow):
        changed = (r.effort or {}).get("changed_fraction")
        return (-(r.difficulty if r.difficulty is not None else -1.0),
                -(changed if changed is not None else -1.0), r.image_id)
    return sorted(data.images, key=key)[:n]


def gallery(data: ReportInput, n: int) -> list[ImageRow]:
    """Up to n images with an overlay, spread evenly over the batch (by image id), not just its start."""
    rows = sorted((r for r in data.images if r.overlay_png), key=lambda r: r.image_id)
    if len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def open_flags(data: ReportInput) -> list[tuple[ImageRow, dict]]:
    """(image, flag) for every flag still open, errors before warnings, then by image."""
    rank = {"error": 0, "warning": 1, "info": 2}
    found = [(r, f) for r in data.images for f in r.flags if not f.get("resolved")]
    return sorted(found, key=lambda rf: (rank.get(rf[1].get("severity"), 3), rf[0].image_id))
