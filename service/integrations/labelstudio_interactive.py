"""Label Studio's interactive mode and region meta: an annotator's smart clicks and brush strokes (the
`context` of a /predict request) as refine edits, the regions a refine changed, and runner-up classes in `meta`.

Label Studio 1.23 sends `params.context = {"result": [...]}`, the smart regions as its editor serialises them
(docs/integrations.md has the facts and how they were found); no HTTP here.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from models.taxonomy import Taxonomy
from service.drafting.refine import EditError, Paint
from service.drafting.refined import Refined
from service.drafting.scores import PhotoScores, RegionAlternative
from service.formats import ls_brush, polygons
from service.integrations.labelstudio import Control, LabelConfig, class_labels

SMART_TYPES = ("keypointlabels", "brushlabels")  # what this backend refines from; other smart regions are ignored


def interactive_context(body: Mapping) -> list[dict] | None:
    """The smart regions of an interactive /predict request (params.context.result), or None when the request
    is an ordinary one (LS's batch predictions send context null)."""
    params = body.get("params")
    context = params.get("context") if isinstance(params, Mapping) else None
    result = context.get("result") if isinstance(context, Mapping) else None
    if not isinstance(result, list) or not result:
        return None
    return [r for r in result if isinstance(r, dict)]


def label_controls(xml: str) -> dict[str, Control]:
    """Every *Labels control of a label config by name (KeyPointLabels too, which LabelConfig leaves out)."""
    controls = {}
    for el in ET.fromstring(xml).iter():
        if el.tag.endswith("Labels") and el.get("name"):
            labels = [lab for lab in el.iter("Label") if lab.get("value") is not None]
            controls[el.get("name")] = Control(el.tag, el.get("name"), el.get("toName", ""),
                                               tuple(lab.get("value") for lab in labels),
                                               tuple((lab.get("alias"), lab.get("value")) for lab in labels
                                                     if lab.get("alias")))
    return controls


def context_edits(regions: Sequence[Mapping], xml: str, scores: PhotoScores, taxonomy: Taxonomy,
                  mapping: Mapping[str, str] | None = None) -> list[dict | Paint]:
    """Refine edits from LS smart regions, in order: a keypoint is a click with its label's class (a negative
    one, Alt-click, hands the region under it to its runner-up); a brush stroke paints its class. Regions are
    in percent (keypoints) or at the size LS saw (brushes), so both fit the photo whatever its decoded size.
    EditError for a label no class has, or a region that is not a click or a stroke."""
    controls = label_controls(xml)
    h, w = scores.size
    edits: list[dict | Paint] = []
    for k, region in enumerate(regions):
        kind = region.get("type")
        value = region.get("value") or {}
        if kind not in SMART_TYPES:
            raise EditError(f"context region {k}: a {kind!r} region; this backend refines from smart keypoints "
                            "(KeyPointLabels) and brush strokes (BrushLabels)")
        labels = value.get(kind) or value.get("labels") or []
        control = controls.get(region.get("from_name"))
        classes = {} if control is None else class_labels(control, taxonomy, mapping, include_background=True)
        lookup = {label: cid for cid, label in classes.items()}
        if kind == "keypointlabels":
            if not all(isinstance(value.get(v), (int, float)) and 0 <= value[v] <= 100 for v in ("x", "y")):
                raise EditError(f"context region {k}: a keypoint needs x and y in percent of the image (0-100), "
                                f"got {value.get('x')!r}, {value.get('y')!r}")
            # A point on the far edge (100) is on the last pixel.
            x, y = min(float(value["x"]), 99.9999) * w / 100.0, min(float(value["y"]), 99.9999) * h / 100.0
            if region.get("is_positive", True) is False:
                edits.append({"kind": "remove", "x": x, "y": y})
                continue
        cid = lookup.get(labels[0]) if labels else None
        if cid is None:
            raise EditError(f"context region {k}: label {labels[0] if labels else None!r} of control "
                            f"{region.get('from_name')!r} is no class of model {taxonomy.name}")
        if kind == "keypointlabels":
            edits.append({"x": x, "y": y, "class": taxonomy.names[cid]})
        else:
            edits.append(Paint(_brush_mask(region, value, h, w, k), cid))
    return edits


def _brush_mask(region: Mapping, value: Mapping, h: int, w: int, k: int) -> np.ndarray:
    size = (int(region.get("original_height") or h), int(region.get("original_width") or w))
    if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
        raise EditError(f"context region {k}: a brush stroke without RLE")
    try:
        mask = ls_brush.decode(value["rle"], *size)
    except ValueError as exc:
        raise EditError(f"context region {k}: the brush stroke's RLE does not decode ({exc})") from None
    if size != (h, w):  # LS drew on the photo as it showed it: scale the stroke to the photo as decoded here
        mask = cv2.resize(mask.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).view(bool)
    return mask


def changed_classes(refined: Refined) -> list[int]:
    """The classes (background left out) whose pixels the edits changed: the regions to send back."""
    moved = refined.prediction.labels != refined.draft_labels
    touched = set(np.unique(refined.draft_labels[moved])) | set(np.unique(refined.prediction.labels[moved]))
    return sorted(int(c) for c in touched if c != 0)


def refined_regions(refined: Refined, config: LabelConfig, taxonomy: Taxonomy,
                    alternatives: Sequence[RegionAlternative], mapping: Mapping[str, str] | None = None,
                    tolerance: float = 1.0) -> list[dict]:
    """The regions of the classes a refine changed, as LS suggestions. Brush regions keep the ids of the
    draft's (tailor-brush-<class id>), so accepting one replaces the drafted region of its class; a class the
    edits removed comes back as an empty region for that reason. Unchanged classes are left out, so
    accepting never overwrites the annotator's own work on them. Without BrushLabels: polygons, new ids."""
    labels, changed = refined.prediction.labels, changed_classes(refined)
    out: list[dict] = []
    if config.brush is not None:
        names = {c: n for c, n in class_labels(config.brush, taxonomy, mapping).items() if c in changed}
        h, w = labels.shape
        present = set(np.unique(labels).tolist())
        for cid, name in names.items():
            mask = labels == cid if cid in present else np.zeros((h, w), dtype=bool)
            out.append({"id": f"tailor-brush-{cid}", "from_name": config.brush.name, "to_name": config.brush.to_name,
                        "type": "brushlabels", "original_width": int(w), "original_height": int(h),
                        "image_rotation": 0, "value": {"format": "rle", "rle": ls_brush.encode(mask),
                                                       "brushlabels": [name]}})
    elif config.polygon is not None:
        names = {c: n for c, n in class_labels(config.polygon, taxonomy, mapping).items() if c in changed}
        polys = polygons.encode_label_map(labels, class_ids=names.keys(), tolerance=tolerance)
        regions = polygons.ls_regions(polys, labels.shape[1], labels.shape[0], names, config.polygon.name,
                                      config.polygon.to_name)
        out = [{"id": f"tailor-refined-poly-{k}", **r} for k, r in enumerate(regions)]
    return with_region_meta(out, alternatives, config, taxonomy, mapping)


def with_region_meta(regions: list[dict], alternatives: Sequence[RegionAlternative], config: LabelConfig,
                     taxonomy: Taxonomy, mapping: Mapping[str, str] | None = None) -> list[dict]:
    """Each brush or polygon region gets `meta`: the runner-up class of its class's drafted parts. LS keeps a
    result's `meta` through predictions and annotations and shows `meta.text` as the region's meta text
    ("Dress 0.52, Skirt 0.41"); `meta.tailor_regions` holds every part (area, bbox, both probabilities)."""
    by_class: dict[str, list[RegionAlternative]] = defaultdict(list)
    for alternative in alternatives:
        by_class[alternative.class_name].append(alternative)
    shown = {taxonomy.names[c]: label for control in config.controls
             for c, label in class_labels(control, taxonomy, mapping).items()}
    label_to_class = {label: name for name, label in shown.items()}
    for region in regions:
        kind = region.get("type")
        label = ((region.get("value") or {}).get(kind) or [None])[0]
        parts = by_class.get(label_to_class.get(label, ""), [])
        if not parts:
            continue
        top = parts[0]  # largest first
        text = (f"{shown.get(top.class_name, top.class_name)} {top.probability:.2f}, "
                f"{shown.get(top.runner_up, top.runner_up)} {top.runner_up_probability:.2f}")
        if len(parts) > 1:
            text += f" (the largest of {len(parts)} parts)"
        region["meta"] = {"text": [text], "tailor_regions": [p.as_dict() for p in parts]}
    return regions
