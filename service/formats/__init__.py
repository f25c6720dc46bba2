"""Mask output formats: each module encodes a label map's classes for one consumer, and decodes back.
FORMATS maps a format name to a callable (label_map, class_names, options) -> {class name: payload},
with JSON-serialisable payloads; an unknown name raises UnknownFormatError listing the known ones.
"""
from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from service.formats import coco_rle, cvat, ls_brush, png, polygons
from service.formats._runs import LabelLayers, as_layers

__all__ = ["FORMATS", "FormatFn", "LabelLayers", "UnknownFormatError", "as_layers", "encode", "get_format",
           "parse_formats"]

# A label map or its LabelLayers (pass LabelLayers to share masks and runs across several formats).
FormatFn = Callable[[np.ndarray | LabelLayers, Sequence[str], Mapping[str, Any] | None], dict[str, Any]]


class UnknownFormatError(ValueError):
    """A format name that is not in FORMATS; the message lists the known names."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"unknown mask format {name!r}; known formats: {', '.join(sorted(FORMATS))}")


def _prepare(label_map: np.ndarray | LabelLayers, class_names: Sequence[str], options: Mapping[str, Any] | None,
             extra: Mapping[str, Any]) -> tuple[LabelLayers, dict[int, str], dict[str, Any]]:
    """The label map's layers, {class id: name} of the classes to emit, and the options with defaults."""
    lm = as_layers(label_map)
    allowed = {"include_background": False, **extra}
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        # Fail loudly: a misspelt option silently ignored would give the caller the wrong output.
        raise ValueError(f"unknown options {unknown}; this format accepts {sorted(allowed)}")
    opts = {**allowed, **opts}
    present = lm.present
    too_big = [int(c) for c in present if c >= len(class_names)]
    if too_big:
        raise ValueError(f"label map has class ids {too_big} but only {len(class_names)} class names")
    first = 0 if opts["include_background"] else 1  # background is the absence of a garment
    wanted = {int(c): str(class_names[c]) for c in present if c >= first}
    return lm, wanted, opts


def _png(label_map, class_names, options=None) -> dict[str, str]:
    lm, wanted, _ = _prepare(label_map, class_names, options, {})
    encoded = png.encode_class_masks(lm, list(wanted))
    return {name: base64.b64encode(data).decode("ascii") for name, data in zip(wanted.values(), encoded)}


def _coco_rle(label_map, class_names, options=None) -> dict[str, dict]:
    lm, wanted, _ = _prepare(label_map, class_names, options, {})
    return {wanted[cid]: rle for cid, rle in coco_rle.encode_label_map(lm, wanted).items()}


def _polygons(label_map, class_names, options=None) -> dict[str, list[dict]]:
    lm, wanted, opts = _prepare(label_map, class_names, options, {"tolerance": polygons.DEFAULT_TOLERANCE})
    per_class = polygons.encode_label_map(lm, wanted, tolerance=float(opts["tolerance"]))
    return {wanted[cid]: polys for cid, polys in per_class.items()}


def _ls_brush(label_map, class_names, options=None) -> dict[str, list[int]]:
    lm, wanted, _ = _prepare(label_map, class_names, options, {})
    return {wanted[cid]: rle for cid, rle in ls_brush.encode_label_map(lm, wanted).items()}


def _cvat(label_map, class_names, options=None) -> dict[str, list[int]]:
    lm, wanted, _ = _prepare(label_map, class_names, options, {})
    return {wanted[cid]: pts for cid, pts in cvat.encode_label_map(lm, wanted).items()}


FORMATS: dict[str, FormatFn] = {
    "png": _png,  # base64 1-bit PNG per class, white inside (0/255 in OpenCV, True in Pillow)
    "coco_rle": _coco_rle,  # {"size": [h, w], "counts": str}
    "polygons": _polygons,  # [{"exterior": [[x, y], ...], "holes": [...]}, ...]; option "tolerance" (px)
    "ls_brush": _ls_brush,  # Label Studio brush RLE bytes
    "cvat": _cvat,  # CVAT mask points: runs + [x1, y1, x2, y2]
}


def get_format(name: str) -> FormatFn:
    """The encoder registered under name, or UnknownFormatError."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise UnknownFormatError(name) from None


def encode(name: str, label_map: np.ndarray, class_names: Sequence[str],
           options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{class name: payload} of every non-background class present, in format name."""
    return get_format(name)(label_map, class_names, options)


def parse_formats(value: str | Sequence[str] | None) -> list[str]:
    """'png, coco_rle' or ['png', 'coco_rle'] -> ['png', 'coco_rle']; unknown names raise UnknownFormatError."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    names: list[str] = []
    for raw in parts:
        name = raw.strip().lower()
        if not name:
            continue
        get_format(name)  # raises UnknownFormatError listing the known names
        if name not in names:
            names.append(name)
    return names
