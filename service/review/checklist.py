"""Per-image QA checklist from flags, and its totals over a batch of images.
A flag counts as resolved when its `resolved` is set or its key is listed (the app stores the keys
an annotator ticked off); an image passes when no flag is open and every expected segment is there.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from service.review.flags import Flag

CHECK_NAMES = ("empty_margins", "islands", "overlaps", "missing_classes", "disagreement", "left_right")

# Checklist line -> the check whose open flags make it fail (all_segments_present is handled apart:
# it also fails on expected classes the correction lacks).
CRITERIA = {"clean_overlaps": "overlaps", "no_margins": "empty_margins", "no_islands": "islands",
            "left_right_ok": "left_right", "no_disagreement": "disagreement"}


def checklist(flags: Iterable[Flag], resolved_keys: Iterable[str] = (), expected_classes: Iterable[str] = (),
              present_classes: Iterable[str] | None = None) -> dict:
    """Summary of one image's flags.

    `all_segments_present` fails on an open missing_classes flag, and, when `present_classes` (the
    correction's classes) is given, on any of `expected_classes` (e.g. asked for by the brief) absent.
    """
    flags = list(flags)
    done = set(resolved_keys)
    is_open = [not (f.resolved or f.key in done) for f in flags]
    by_check = {name: {"total": 0, "resolved": 0, "open": 0} for name in CHECK_NAMES}
    for f, o in zip(flags, is_open):
        row = by_check.setdefault(f.check, {"total": 0, "resolved": 0, "open": 0})
        row["total"] += 1
        row["open" if o else "resolved"] += 1
    missing = {c for f, o in zip(flags, is_open) if o and f.check == "missing_classes" for c in f.classes}
    if present_classes is not None:
        missing |= set(expected_classes) - set(present_classes)
    summary: dict = {"all_segments_present": not missing, "missing_segments": sorted(missing)}
    summary.update({line: by_check[check]["open"] == 0 for line, check in CRITERIA.items()})
    n_open = sum(is_open)
    summary.update({"flags_total": len(flags), "flags_resolved": len(flags) - n_open, "flags_open": n_open,
                    "by_check": by_check, "passed": n_open == 0 and not missing})
    return summary


def batch_checklist(items: Iterable[dict] | Mapping[str, dict]) -> dict:
    """Totals over per-image checklists: a list, or {image_id: checklist} to name the failing images."""
    named = items.items() if isinstance(items, Mapping) else enumerate(items)
    lines = ("all_segments_present", *CRITERIA)
    out: dict = {"images": 0, "passed": 0, "failing": [], "flags_total": 0, "flags_resolved": 0, "flags_open": 0,
                 "failing_by_criterion": dict.fromkeys(lines, 0), "by_check": {}}
    for image_id, cl in named:
        out["images"] += 1
        out["passed"] += bool(cl["passed"])
        if not cl["passed"]:
            out["failing"].append(image_id)
        for k in ("flags_total", "flags_resolved", "flags_open"):
            out[k] += cl[k]
        for k in lines:
            out["failing_by_criterion"][k] += not cl[k]
        for name, row in cl["by_check"].items():
            acc = out["by_check"].setdefault(name, {"total": 0, "resolved": 0, "open": 0})
            for k in acc:
                acc[k] += row[k]
    out["pass_rate"] = out["passed"] / out["images"] if out["images"] else None
    return out
