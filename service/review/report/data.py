"""What a batch summary report shows, as plain typed data the app fills from its database.
No drawing and no HTML here: charts.py and html.py read a ReportInput; class_distribution and
flag_dicts compute the parts that would otherwise be repeated by every caller.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

import numpy as np


@dataclass
class BatchInfo:
    id: str
    name: str
    created_at: datetime | str
    model_version: str | None = None         # the version that drafted the batch (rows may differ)
    taxonomy: str = ""                       # taxonomy tag, e.g. "fashion-13@1"
    annotators: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)   # e.g. {"images": 40, "approved": 31, ...}


@dataclass
class ImageRow:
    image_id: str
    width: int
    height: int
    annotator: str | None = None
    reviewer: str | None = None
    qa_status: str = "pending"
    notes: str = ""
    draft_model_version: str | None = None
    classes: list[str] = field(default_factory=list)   # present in the final mask, background left out
    difficulty: float | None = None                    # 1 - mean draft confidence, 0 (easy) .. 1
    difficulty_reason: str = ""                        # worklist.difficulty_reason(...)
    effort: dict | None = None                         # correction_effort(...).to_dict(); None: no draft
    checklist: dict | None = None                      # summary.checklist(...)
    flags: list[dict] = field(default_factory=list)    # Flag.to_dict() with "resolved" as stored
    overlay_png: bytes | None = None                   # thumbnail of the final mask over the photo


class EffortPoint(NamedTuple):
    """Mean changed-pixel fraction of one model version's drafts corrected on one day."""
    date: date | str
    model_version: str
    changed_fraction: float
    n: int


@dataclass
class DisagreementSample:
    image_id: str
    annotators: tuple[str, str]
    png: bytes                                         # agreement.disagreement_overlay as PNG
    pixel_agreement: float | None = None


@dataclass
class ReportInput:
    batch: BatchInfo
    class_names: list[str]                             # taxonomy order, id = index; 0 = background
    palette: Sequence[Sequence[int]]                   # one RGB triple per class (taxonomy.palette())
    class_pixels: dict[str, int]                       # final masks: pixels per class over the batch
    class_images: dict[str, int]                       # final masks: images holding each class
    images: list[ImageRow] = field(default_factory=list)
    effort: dict = field(default_factory=dict)         # effort.aggregate(records): {version: summary}
    effort_over_time: list[EffortPoint] = field(default_factory=list)
    agreement: dict | None = None                      # aggregate_agreement(...); None: no double work
    disagreement_samples: list[DisagreementSample] = field(default_factory=list)
    batch_checklist: dict | None = None                # summary.batch_checklist({image_id: checklist})
    generated_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    def __post_init__(self) -> None:
        # Fail here, naming the problem, rather than as a KeyError deep inside a chart.
        if len(self.palette) < len(self.class_names):
            raise ValueError(f"palette has {len(self.palette)} colours for {len(self.class_names)} classes")
        self.palette = [tuple(int(v) for v in rgb[:3]) for rgb in self.palette]
        self.effort_over_time = [EffortPoint(*p) for p in self.effort_over_time]
        unknown = sorted((set(self.class_pixels) | set(self.class_images)) - set(self.class_names))
        if unknown:
            raise ValueError(f"class counts name classes outside class_names: {unknown}")

    def color(self, name: str) -> tuple[int, int, int]:
        """The palette colour of a class; grey for a name the taxonomy does not have."""
        try:
            return tuple(self.palette[self.class_names.index(name)])
        except ValueError:
            return (128, 128, 128)


def class_distribution(label_maps: Iterable[np.ndarray], class_names: Sequence[str]
                       ) -> tuple[dict[str, int], dict[str, int]]:
    """(pixels per class, images per class) over final label maps, for ReportInput.class_pixels/_images.

    Takes any iterable, so the maps can be streamed from the store one at a time. Every class of
    `class_names` is listed (0 when absent, so the table shows that it never occurred); an id beyond
    the taxonomy is an error rather than a silently dropped count.
    """
    pixels = np.zeros(len(class_names), dtype=np.int64)
    images = np.zeros(len(class_names), dtype=np.int64)
    for lm in label_maps:
        counts = np.bincount(np.asarray(lm, dtype=np.uint8).ravel(), minlength=256)
        if counts[len(class_names):].any():
            bad = np.flatnonzero(counts[len(class_names):]) + len(class_names)
            raise ValueError(f"label map holds ids {bad.tolist()} outside the {len(class_names)} classes")
        pixels += counts[:len(class_names)]
        images += counts[:len(class_names)] > 0
    return ({n: int(v) for n, v in zip(class_names, pixels)}, {n: int(v) for n, v in zip(class_names, images)})


def flag_dicts(flags: Iterable, resolved_keys: Iterable[str] = ()) -> list[dict]:
    """Flags (Flag objects or their to_dict()) as ImageRow.flags, `resolved` set from the ticked keys.

    The same rule as summary.checklist: a flag is resolved when its own `resolved` is set or its key
    is among the keys an annotator ticked off.
    """
    done = set(resolved_keys)
    out = []
    for f in flags:
        d = dict(f) if isinstance(f, Mapping) else f.to_dict()
        d["resolved"] = bool(d.get("resolved")) or d["key"] in done
        out.append(d)
    return out


def effort_timeline(records: Iterable[tuple[date | datetime | str, Mapping]]) -> list[EffortPoint]:
    """ReportInput.effort_over_time from (when corrected, effort dict) pairs, one point per day and version.

    Times are reduced to their day (a datetime's date, a string's first 10 characters, ISO assumed) so
    a batch corrected over a week gives one point per day rather than one per correction.
    """
    groups: dict[tuple[str, str], list[float]] = {}
    for when, effort in records:
        day = when.date().isoformat() if isinstance(when, datetime) else str(when)[:10]
        groups.setdefault((day, effort.get("model_version") or "unknown"), []).append(
            float(effort["changed_fraction"]))
    return [EffortPoint(day, version, float(np.mean(v)), len(v)) for (day, version), v in sorted(groups.items())]
