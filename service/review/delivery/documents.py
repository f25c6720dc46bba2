"""The package's text documents: the COCO file, metadata.json/.csv, classes.csv and README.txt.
Everything here is built from plain per-image records (ImageRecord) so the writer can drop each label
map as soon as its files are written; COCO ids and category rules are the service's own (service.drafting.answer).
"""
from __future__ import annotations

import csv
import io
import json
import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.taxonomy import Taxonomy
from service.csv_cells import csv_text
from service.drafting.answer import class_annotations, coco_categories

from service.review.delivery.items import FLAG_REASON, DeliveryItem

FORMAT_VERSION = 1
LR_CONVENTION = ("left/right are the PERSON's own sides, facing the camera: the person's left appears on the "
                 "IMAGE's right (larger x), their right on the image's left")
CSV_COLUMNS = ["image_id", "file_name", "width", "height", "classes_present", "annotator", "reviewer", "qa_status",
               "notes", "draft_model_version", "approved", "flagged", "flag_reason"]
_TEXT_COLUMNS = {"image_id", "file_name", "annotator", "reviewer", "qa_status", "notes", "draft_model_version"}
# Effort keys that repeat the row's own columns (image id, draft model version): not repeated in the CSV.
_EFFORT_SKIP = {"image_id", "model_version"}


@dataclass
class ImageRecord:
    """What the documents need of one written image."""
    coco_id: int
    item: DeliveryItem
    file_name: str                      # images/<file_name>
    width: int
    height: int
    image_sha256: str
    label_file: str | None              # relative to the package root; None for an item without a mask
    colour_file: str | None
    class_pixels: dict[str, int] = field(default_factory=dict)   # classes present (background left out)
    annotations: list[dict] = field(default_factory=list)        # COCO, ids assigned by coco_document
    left_right: dict | None = None      # midline and per-class side pixel counts of the split

    @property
    def flagged(self) -> bool:
        return not self.item.approved


def class_rows(taxonomy: Taxonomy, base: Taxonomy | None = None, base_of=(), side_of=()) -> list[dict]:
    """id, name, RGB colour (and, for a split taxonomy, the class it came from and its side) per class."""
    rows = []
    for c in taxonomy.classes:
        row: dict[str, Any] = {"id": c.id, "name": c.name, "color": list(c.color)}
        if base is not None:
            row["base_class"] = base.names[base_of[c.id]]
            row["side"] = side_of[c.id]
        rows.append(row)
    return rows


def annotations_for(label_map: np.ndarray, taxonomy: Taxonomy, image_id: int,
                    flagged: bool) -> tuple[list[dict], dict[str, int]]:
    """One COCO annotation per garment class present (RLE, area, bbox as pycocotools computes them),
    and the pixel count of each class present."""
    # iscrowd 0 as in every COCO file the service writes; pycocotools reads an RLE dict either way.
    anns = [{"image_id": image_id, **a, "flagged": flagged}
            for a in class_annotations(label_map, taxonomy.num_classes)]
    pixels = {taxonomy.names[a["category_id"]]: a["area"] for a in anns}
    return anns, pixels


def coco_document(records: list[ImageRecord], taxonomy: Taxonomy, info: dict, classes: list[dict]) -> dict:
    images, annotations = [], []
    for r in records:
        entry = {"id": r.coco_id, "file_name": r.file_name, "width": r.width, "height": r.height,
                 "tailor_image_id": r.item.image_id, "label_file": r.label_file, "colour_file": r.colour_file,
                 "flagged": r.flagged}
        if r.flagged:
            entry["flag_reason"] = FLAG_REASON
        images.append(entry)
        annotations.extend(r.annotations)
    cats = coco_categories(taxonomy)
    by_id = {c["id"]: c for c in classes}
    for cat in cats:  # a split category says which garment and which side of the person it is
        for key in ("base_class", "side"):
            if key in by_id[cat["id"]]:
                cat[key] = by_id[cat["id"]][key]
    return {"info": info, "licenses": [], "images": images,
            "annotations": [{"id": i + 1, **a} for i, a in enumerate(annotations)], "categories": cats}


def metadata_row(r: ImageRecord) -> dict:
    it = r.item
    row = {"image_id": it.image_id, "file_name": r.file_name, "image_file": f"images/{r.file_name}",
           "image_sha256": r.image_sha256, "label_file": r.label_file, "colour_file": r.colour_file,
           "width": r.width, "height": r.height, "classes_present": list(r.class_pixels),
           "class_pixels": r.class_pixels, "annotator": it.annotator, "reviewer": it.reviewer,
           "qa_status": it.qa_status, "notes": it.notes, "draft_model_version": it.draft_model_version,
           "approved": bool(it.approved), "flagged": r.flagged, "flag_reason": FLAG_REASON if r.flagged else None,
           "effort": it.effort_dict(), "extra": dict(it.extra)}
    if r.left_right is not None:
        row["left_right"] = r.left_right
    return row


def effort_columns(rows: list[dict]) -> list[str]:
    """Scalar effort keys over all rows, in first-seen order (Effort's own field order)."""
    keys: list[str] = []
    for row in rows:
        for k, v in (row["effort"] or {}).items():
            if k not in _EFFORT_SKIP and not isinstance(v, (dict, list, tuple)) and k not in keys:
                keys.append(k)
    return keys


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    # Free text (notes, names) opened in a spreadsheet must not run as a formula; metadata.json keeps
    # the exact text.
    return csv_text(value) if column in _TEXT_COLUMNS else str(value)


def metadata_csv(rows: list[dict]) -> str:
    eff = effort_columns(rows)
    extra = sorted({k for row in rows for k in row["extra"]})
    header = CSV_COLUMNS + [f"effort_{k}" for k in eff] + [f"extra_{k}" for k in extra]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        effort = row["effort"] or {}
        w.writerow([_cell(c, row[c]) for c in CSV_COLUMNS] + [_cell("", effort.get(k)) for k in eff]
                   + [_cell("notes", row["extra"].get(k)) for k in extra])
    return buf.getvalue()


def classes_csv(classes: list[dict]) -> str:
    split = "side" in classes[0]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["id", "name", "r", "g", "b"] + (["base_class", "side"] if split else []))
    for c in classes:
        w.writerow([c["id"], c["name"], *c["color"]] + ([c["base_class"], c["side"] or ""] if split else []))
    return buf.getvalue()


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def readme_text(meta: dict, added: list[str]) -> str:
    tax, n, flagged = meta["taxonomy"], meta["counts"]["images"], meta["counts"]["flagged"]
    lines = [
        f"Tailor delivery package: {n} image(s), taxonomy {tax['tag']}, created {meta['created_at']}.",
        "",
        "images/<id>.<ext>       the original photos, byte for byte (sha256 in metadata.json)",
        "labels/<id>.png         8-bit single-channel label maps: pixel value = class id (classes.csv),",
        "                        at the photo's displayed size (EXIF orientation applied)",
        "colour/<id>.png         the same label maps in colour, for people (colours in classes.csv)",
        "annotations.coco.json   COCO: one annotation per class per image, RLE segmentation;",
        "                        category id = class id; file_name is relative to images/",
        "metadata.json           batch information, the class list, and one record per image",
        "metadata.csv            one row per image: who annotated and reviewed it, QA status, notes,",
        "                        the model version of the draft, correction effort (effort_* columns)",
        "classes.csv             id, name and RGB colour of every class",
        "SHA256SUMS              checksums of every file (sha256sum -c SHA256SUMS)",
    ]
    lines += [f"{name:<24}added by the exporter" for name in added]
    lines += ["", "Background (id 0) has no COCO annotation. In metadata.csv, lists are ';'-separated and free",
              "text starting with = + - @ is prefixed with ' so spreadsheets do not run it; metadata.json keeps it",
              "exact."]
    if meta["left_right"]:
        lines += [""] + textwrap.wrap("Left/right: paired garments are split into <name>_left and <name>_right "
                                      f"classes; {LR_CONVENTION}.", 100)
    if flagged:
        lines += ["", f"FLAGGED: {flagged} image(s) have no approved mask. They are included on request and marked",
                  f"flagged (flag_reason \"{FLAG_REASON}\") in metadata.json, metadata.csv and the COCO images and",
                  "annotations. Do not use them as ground truth."]
    return "\n".join(lines) + "\n"
