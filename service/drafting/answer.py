"""From a draft to what clients receive: classes present with area and score, encodings, COCO.

The HTTP app, batch jobs and `tailor predict` all build their answers here, so a mask described by
one of them is described identically by the others. Encoders come from the service.formats registry.
"""
from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from models.taxonomy import Taxonomy
from service.drafting.left_right import split_left_right
from service.drafting.predictor import Prediction
from service.drafting.scores import RegionAlternative
from service.formats import LabelLayers, as_layers, coco_rle, get_format
from service.formats import png as png_format

LEFT_RIGHT_DOC = ("split paired classes (pants, legwear, socks, shoes) into <name>_left and <name>_right: the "
                  "person's own left and right as they face the camera, so the person's LEFT is on the image's "
                  "RIGHT. Mask ids, names, encodings and colours then follow the split class list (class_names)")


def class_summaries(labels: np.ndarray | LabelLayers, confidence: np.ndarray, taxonomy: Taxonomy) -> list[dict]:
    """One entry per class present: id, name, pixel area and score (mean confidence over its pixels)."""
    layers = as_layers(labels)
    n = taxonomy.num_classes
    # Summed per run of equal labels, then per class: a pass over the pixels plus one over the runs,
    # twice as fast as bincount over every pixel (which widens each label and weight to 64 bits).
    starts, values = layers.row_runs
    run_sums = _run_sums(np.asarray(confidence, dtype=np.float32).ravel(), starts, _SUM_CHUNK)
    areas = np.bincount(values, weights=layers.run_lengths(), minlength=n)
    sums = np.bincount(values, weights=run_sums, minlength=n)
    names = taxonomy.names
    return [{"id": int(c), "name": names[c], "area": int(areas[c]), "score": round(float(sums[c] / areas[c]), 4)}
            for c in np.flatnonzero(areas[:n])]


_SUM_CHUNK = 1 << 22  # pixels summed per pass: reduceat widens its input to float64 first (32 MB here)


def _run_sums(values: np.ndarray, starts: np.ndarray, chunk: int) -> np.ndarray:
    """Float64 sums of `values` over the runs beginning at `starts`, a chunk of pixels at a time, so that a
    36-megapixel photo does not need a 290 MB float64 copy; in one pass (the same sums) up to `chunk`."""
    if values.size <= chunk:
        return np.add.reduceat(values, starts, dtype=np.float64)
    ends = np.append(starts[1:], values.size)
    out = np.empty(starts.size, dtype=np.float64)
    i = 0
    while i < starts.size:
        a = starts[i]
        j = int(np.searchsorted(ends, a + chunk, side="right"))  # runs i..j-1 end within the chunk
        if j <= i:  # one run longer than a chunk
            out[i] = sum(float(np.add.reduce(values[p:min(p + chunk, ends[i])], dtype=np.float64))
                         for p in range(a, ends[i], chunk))
            i += 1
            continue
        out[i:j] = np.add.reduceat(values[a:ends[j - 1]], starts[i:j] - a, dtype=np.float64)
        i = j
    return out


def output_classes(labels: np.ndarray, taxonomy: Taxonomy, left_right: bool = False) -> tuple[np.ndarray, Taxonomy]:
    """The label map and class list a client receives: the model's own, or with paired classes split into
    the person's left and right (service.drafting.left_right), which every format, summary and overlay then uses."""
    if not left_right:
        return labels, taxonomy
    split = split_left_right(labels, taxonomy)
    return split.label_map, split.classes.taxonomy


def encode_formats(labels: np.ndarray | LabelLayers, class_names: Sequence[str], formats: Iterable[str],
                   options: dict[str, dict] | None = None) -> dict[str, dict[str, Any]]:
    """{format: {class name: payload}} for the non-background classes present."""
    layers = as_layers(labels)  # shared by every format
    return {f: get_format(f)(layers, class_names, (options or {}).get(f)) for f in formats}


def described_classes(labels: np.ndarray | LabelLayers, confidence: np.ndarray, taxonomy: Taxonomy,
                      formats: Sequence[str] = ()) -> list[dict]:
    """class_summaries with each garment's payload in every format asked for, under "encodings"."""
    layers = as_layers(labels)
    classes = class_summaries(layers, confidence, taxonomy)
    encoded = encode_formats(layers, taxonomy.names, formats)
    for entry in classes:
        # The registry leaves background out (it is the absence of a garment), so it gets no encodings.
        entry["encodings"] = {f: payloads[entry["name"]] for f, payloads in encoded.items()
                              if entry["name"] in payloads}
    return classes


def answer_for(pred: Prediction, formats: Sequence[str] = (), confidence_map: bool = False,
               left_right: bool = False, regions: Sequence[RegionAlternative] | None = None) -> dict:
    """The JSON answer for one photo (PredictResponse in service.api.schemas), in the class list of the
    model that drafted it (with hot swaps, maybe no longer the one serving). `regions`: the draft's
    connected regions with their runner-up classes (region_alternatives), named in the model's classes."""
    taxonomy = pred.taxonomy
    labels, taxonomy = output_classes(pred.labels, taxonomy, left_right)
    conf = pred.confidence
    classes = described_classes(LabelLayers(labels), conf, taxonomy, formats)
    h, w = labels.shape
    result = {
        "model_version": pred.model_version,
        "taxonomy": {"name": taxonomy.name, "tag": taxonomy.tag},
        "left_right": bool(left_right),
        "class_names": taxonomy.names,
        "width": int(w), "height": int(h),
        "input_size": {"height": int(pred.input_size[0]), "width": int(pred.input_size[1])},
        "difficulty": round(float(pred.difficulty), 4),
        "timings_ms": {k: round(float(v), 2) for k, v in pred.timings_ms.items()},
        "formats": list(formats),
        "classes": classes,
    }
    if regions is not None:
        result["regions"] = [r.as_dict() for r in regions]
    if "png" in formats:
        result["label_map_png"] = base64.b64encode(png_format.encode(labels)).decode("ascii")
    if confidence_map:
        # 8-bit is plenty for a review heat map and keeps the answer small.
        quantised = np.clip(np.rint(conf * 255.0), 0, 255).astype(np.uint8)
        result["confidence_png"] = base64.b64encode(png_format.encode(quantised)).decode("ascii")
    return result


def coco_categories(taxonomy: Taxonomy) -> list[dict]:
    # Category id = class id, so ids in COCO files match the label maps; background is not a category.
    return [{"id": c.id, "name": c.name, "supercategory": "garment" if c.id > 2 else "person",
             "color": list(c.color)} for c in taxonomy.classes if c.id != 0]


def class_annotations(labels: np.ndarray | LabelLayers, num_classes: int) -> list[dict]:
    """COCO annotation bodies, one per garment class present (background left out): RLE segmentation,
    area and bbox as pycocotools computes them. Callers add image_id and their own fields."""
    layers = as_layers(labels)
    areas = np.bincount(layers.row_runs[1], weights=layers.run_lengths(), minlength=num_classes).astype(np.int64)
    present = [c for c in range(1, num_classes) if areas[c]]
    rles = coco_rle.encode_label_map(layers, present)
    out = []
    for cid in present:
        x1, y1, x2, y2 = layers.box(cid)
        bbox = [x1, y1, x2 - x1 + 1, y2 - y1 + 1]
        out.append({"category_id": int(cid), "segmentation": rles[cid], "area": int(areas[cid]), "bbox": bbox,
                    "iscrowd": 0})
    return out


def coco_image_entry(image_id: int, file_name: str, labels: np.ndarray, confidence: np.ndarray,
                     taxonomy: Taxonomy, difficulty: float) -> tuple[dict, list[dict]]:
    """A COCO image record and its annotations (one RLE per class present), ids relative to the image."""
    h, w = labels.shape
    layers = LabelLayers(labels)
    scores = {e["id"]: e["score"] for e in class_summaries(layers, confidence, taxonomy)}
    annotations = [{"image_id": image_id, **a, "score": scores[a["category_id"]]}
                   for a in class_annotations(layers, taxonomy.num_classes)]
    image = {"id": image_id, "file_name": file_name, "width": int(w), "height": int(h),
             "difficulty": round(float(difficulty), 4)}
    return image, annotations


def coco_document(images: list[dict], annotations: list[dict], taxonomy: Taxonomy, version: str) -> dict:
    """A COCO instance-segmentation file; annotation ids are assigned here, in order."""
    numbered = [{"id": i + 1, **a} for i, a in enumerate(annotations)]
    return {"info": {"description": f"Tailor pre-annotations ({taxonomy.tag})", "model_version": version},
            "images": images, "annotations": numbered, "categories": coco_categories(taxonomy)}
