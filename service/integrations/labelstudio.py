"""Label Studio helpers: parse a project's label config, map classes to its labels, build prediction regions,
turn an annotation's brush/polygon regions back into a label map, and queue retrain requests as jobs.

No HTTP here (see labelstudio_client and service/api/routes/labelstudio.py), so each piece is testable alone.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.taxonomy import Taxonomy
from service.formats import ls_brush, polygons
from service.store import queue
from service.store.db import store_from_settings

log = logging.getLogger("tailor.labelstudio")

__all__ = ["LabelConfig", "LabelConfigError", "Control", "DecodeReport", "parse_label_config", "class_labels",
           "label_classes", "prediction_regions", "annotation_label_map", "task_image_ref", "project_id",
           "queue_retrain", "OVERLAP_RULE"]

# How overlapping regions of an annotation become one label map (written into each correction's notes).
# Brushes are pixel-exact while polygons approximate, and a project with both kinds gets both drafts of a
# class: a class with a brush region is read from its brushes alone (so erasing brush pixels sticks), the
# polygons of other classes are painted first and brushes over them; within a kind, later regions win.
OVERLAP_RULE = ("a class with brush regions ignores its polygons; brushes over polygons; "
                "then the later region in the result list wins")
_REGION_TYPES = {"brushlabels": "BrushLabels", "polygonlabels": "PolygonLabels"}


class LabelConfigError(ValueError):
    """The project's label config cannot be used (not XML, or no BrushLabels/PolygonLabels on an Image)."""


@dataclass(frozen=True)
class Control:
    tag: str                          # "BrushLabels" or "PolygonLabels"
    name: str                         # from_name of its regions
    to_name: str                      # the Image it labels
    labels: tuple[str, ...]           # <Label value=...> in config order
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, value) pairs


@dataclass(frozen=True)
class LabelConfig:
    images: dict[str, str]            # Image name -> task data key ("$image" -> "image")
    brush: Control | None
    polygon: Control | None

    @property
    def controls(self) -> list[Control]:
        return [c for c in (self.brush, self.polygon) if c is not None]

    @property
    def image_key(self) -> str | None:
        for c in self.controls:
            if c.to_name in self.images:
                return self.images[c.to_name]
        return next(iter(self.images.values()), None)


def parse_label_config(xml: str) -> LabelConfig:
    """The first BrushLabels and first PolygonLabels control of a config, with the Image they label."""
    if not isinstance(xml, str) or not xml.strip():
        raise LabelConfigError("the label config is empty")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f"the label config is not valid XML ({exc})") from None
    images: dict[str, str] = {}
    found: dict[str, Control] = {}
    for el in root.iter():
        if el.tag == "Image" and el.get("name") and el.get("value", "").startswith("$"):
            images[el.get("name")] = el.get("value")[1:]
        elif el.tag in ("BrushLabels", "PolygonLabels") and el.tag not in found and el.get("name"):
            labels = [lab for lab in el.iter("Label") if lab.get("value") is not None]
            found[el.tag] = Control(el.tag, el.get("name"), el.get("toName", ""),
                                    tuple(lab.get("value") for lab in labels),
                                    tuple((lab.get("alias"), lab.get("value")) for lab in labels if lab.get("alias")))
    if not found:
        raise LabelConfigError("the label config has no BrushLabels or PolygonLabels control; add one (with a "
                               "<Label> per garment class) on an <Image> to get drafts")
    return LabelConfig(images, found.get("BrushLabels"), found.get("PolygonLabels"))


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def class_labels(control: Control, taxonomy: Taxonomy, mapping: Mapping[str, str] | None = None,
                 include_background: bool = False) -> dict[int, str]:
    """{class id: the control's label} for each class whose (mapped) name is a label of the control.

    mapping is class name -> label (the labelstudio_label_map setting); a class not in it looks for a
    label of its own name. Matching ignores case and repeated spaces. A class with no label is left out:
    never guessed. Background is left out unless asked: the absence of a region already means it.
    """
    by_class = {_norm(k): v for k, v in (mapping or {}).items()}
    lookup: dict[str, str] = {}
    for value in control.labels:
        lookup.setdefault(_norm(value), value)
    for alias, value in control.aliases:
        lookup.setdefault(_norm(alias), value)
    out: dict[int, str] = {}
    # Explicit mappings first: a label mapped to one class is not also taken by another class's own name.
    for explicit in (True, False):
        for c in taxonomy.classes:
            if (c.id == 0 and not include_background) or (_norm(c.name) in by_class) != explicit:
                continue
            target = _norm(by_class.get(_norm(c.name), c.name))
            if target in lookup and lookup[target] not in out.values():
                out[c.id] = lookup[target]
    return dict(sorted(out.items()))


def label_classes(config: LabelConfig, taxonomy: Taxonomy, mapping: Mapping[str, str] | None = None) -> dict[str, int]:
    """{normalised label: class id} over every control: how annotation regions are read back."""
    out: dict[str, int] = {}
    for control in config.controls:
        for cid, label in class_labels(control, taxonomy, mapping, include_background=True).items():
            out.setdefault(_norm(label), cid)
    return out


def prediction_regions(labels: np.ndarray, scores: Mapping[int, float], config: LabelConfig, taxonomy: Taxonomy,
                       mapping: Mapping[str, str] | None = None, tolerance: float = 1.0) -> list[dict]:
    """One brushlabels region per labelled class present, plus polygonlabels when the config has them."""
    h, w = labels.shape
    out: list[dict] = []
    if config.brush is not None:
        names = class_labels(config.brush, taxonomy, mapping)
        ids = {n: c for c, n in names.items()}
        for region in ls_brush.regions(labels, names, config.brush.name, config.brush.to_name, score=scores):
            out.append({"id": f"tailor-brush-{ids[region['value']['brushlabels'][0]]}", **region})
    if config.polygon is not None:
        names = class_labels(config.polygon, taxonomy, mapping)
        if names:
            polys = polygons.encode_label_map(labels, class_ids=names.keys(), tolerance=tolerance)
            regions = polygons.ls_regions(polys, w, h, names, config.polygon.name, config.polygon.to_name,
                                          score=scores)
            out.extend({"id": f"tailor-poly-{k}", **r} for k, r in enumerate(regions))
    return out


@dataclass
class DecodeReport:
    """What happened to an annotation's regions on the way to a label map (kept in the correction's notes)."""

    regions: int = 0                                         # regions painted
    overlap_pixels: int = 0                                  # pixels claimed by regions of different classes
    unmapped: dict[str, int] = field(default_factory=dict)   # label -> regions left out (no class)
    other: int = 0                                           # regions of other types (choices, text, ...)
    shadowed: int = 0                                        # polygons of classes that have brush regions

    def notes(self, origin: str) -> str:
        parts = [origin, f"{self.regions} regions", f"overlap_pixels={self.overlap_pixels} ({OVERLAP_RULE})"]
        if self.unmapped:
            parts.append(f"labels without a class, left out: {dict(sorted(self.unmapped.items()))}")
        if self.shadowed:
            parts.append(f"{self.shadowed} polygons of classes drawn with a brush ignored")
        if self.other:
            parts.append(f"{self.other} non-mask regions ignored")
        return "; ".join(parts)


def _region_mask(region: Mapping, kind: str, height: int, width: int) -> np.ndarray:
    value = region.get("value") or {}
    if kind == "brushlabels":
        if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
            raise ValueError(f"brush region {region.get('id')!r} has no RLE (format {value.get('format')!r})")
        return ls_brush.decode(value["rle"], height, width)
    points = np.asarray(value.get("points") or [], dtype=np.float64).reshape(-1, 2)
    if len(points) < 3:
        return np.zeros((height, width), dtype=bool)
    # Inverse of polygons.ls_regions: percent of the image -> pixel centres.
    pixels = points * np.array([width / 100.0, height / 100.0]) - 0.5
    return polygons.decode([{"exterior": pixels.tolist(), "holes": []}], height, width)


def annotation_label_map(result: Sequence[Mapping], height: int, width: int,
                         classes: Mapping[str, int]) -> tuple[np.ndarray, DecodeReport]:
    """Paint an annotation's regions into a (H, W) uint8 label map by OVERLAP_RULE; report what happened.

    classes is label_classes(...). Regions drawn for another image size are an error (ValueError):
    the annotation does not belong to this image as decoded (EXIF orientation applied).
    """
    report = DecodeReport()
    labelled: list[tuple[Mapping, str, int]] = []
    for region in result:
        kind = region.get("type") if isinstance(region, Mapping) else None
        names = (region.get("value") or {}).get(kind) if kind in _REGION_TYPES else None
        if not names:
            report.other += 1
            continue
        size = (region.get("original_width"), region.get("original_height"))
        if None not in size and tuple(size) != (width, height):
            raise ValueError(f"region {region.get('id')!r} was drawn on a {size[0]}x{size[1]} image, but the task's "
                             f"image is {width}x{height}")
        cid = classes.get(_norm(names[0]))
        if cid is None:
            report.unmapped[names[0]] = report.unmapped.get(names[0], 0) + 1
            continue
        labelled.append((region, kind, cid))
    brushed = {cid for _, kind, cid in labelled if kind == "brushlabels"}
    # Polygons first, brushes over them; a class with any brush region is taken from its brushes alone.
    order = [r for r in labelled if r[1] == "polygonlabels" and r[2] not in brushed] + \
            [r for r in labelled if r[1] == "brushlabels"]
    report.shadowed = len(labelled) - len(order)
    out = np.zeros((height, width), dtype=np.uint8)
    painted = np.zeros((height, width), dtype=bool)
    conflict = np.zeros((height, width), dtype=bool)
    for region, kind, cid in order:
        mask = _region_mask(region, kind, height, width)
        conflict |= mask & painted & (out != cid)
        out[mask] = cid
        painted |= mask
        report.regions += 1
    report.overlap_pixels = int(conflict.sum())
    return out, report


def task_image_ref(task: Mapping, config: LabelConfig) -> str:
    """The task's image reference (URL or /data/... path) named by the config's Image value."""
    data = task.get("data") or {}
    key = config.image_key
    value = data.get(key) if key else None
    if value is None:
        strings = [v for v in data.values() if isinstance(v, str)]
        if len(strings) != 1:
            raise ValueError(f"task {task.get('id')} has no image in data[{key!r}] (data keys: {sorted(data)})")
        value = strings[0]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"task {task.get('id')}: data[{key!r}] is not an image URL")
    return value.strip()


def project_id(value) -> int | None:
    """Label Studio names a project as 7, "7", "7.1732541234" (id.created-timestamp) or {"id": 7, ...}."""
    if isinstance(value, Mapping):
        value = value.get("id")
    try:
        return int(str(value).split(".", 1)[0])
    except (TypeError, ValueError):
        return None


_retrain_lock = threading.Lock()


def queue_retrain(reason: str, *, settings, details: Mapping | None = None, store=None) -> dict:
    """Queue a retrain job (joining one already queued) and log the request.

    Every request is also one JSON line in DATA_DIR/retrain-requests.jsonl, so who asked stays on record
    even when several requests share one job. `store` defaults to a connection opened from settings.
    """
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": reason,
              "details": dict(details or {})}
    own = store is None
    store = store or store_from_settings(settings, upgrade=False)
    try:
        with store.session() as s:
            job, created = queue.enqueue_retrain(s, reason=reason, requested_by="labelstudio",
                                                 max_attempts=settings.job_max_attempts)
            record.update(job_id=job.id, job_status=job.status, created=created)
    finally:
        if own:
            store.close()
    path = Path(settings.data_dir) / "retrain-requests.jsonl"
    with _retrain_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
    log.info("retrain requested: %s (job %s, %s)", reason, job.id, "queued" if created else "joined")
    return {**record, "queued_in": str(path)}
