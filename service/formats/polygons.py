"""Polygons with holes: binary masks <-> [{"exterior": [[x, y], ...], "holes": [[[x, y], ...], ...]}, ...].
Traced with cv2.findContours (RETR_CCOMP: outer boundaries and their holes), simplified with approxPolyDP,
rasterised back with fillPoly; vertices are pixel centres (see encode); also Label Studio polygonlabels.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np

from service.formats._runs import LabelLayers, as_layers, bounding_box, check_mask, wanted_present

__all__ = ["decode", "decode_label_map", "encode", "encode_label_map", "ls_regions"]

DEFAULT_TOLERANCE = 1.0  # pixels: max distance approxPolyDP may move the boundary


def _simplify(contour: np.ndarray, tolerance: float) -> list[list[int]]:
    # CHAIN_APPROX_SIMPLE already dropped collinear points losslessly; 0 keeps exactly that.
    if tolerance > 0:
        contour = cv2.approxPolyDP(contour, float(tolerance), True)
    return contour.reshape(-1, 2).tolist()


def encode(mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Polygons of one binary mask, one per 8-connected component, each with its (4-connected) holes.

    Coordinates: a vertex [x, y] is the centre of pixel column x, row y (integers). Contours run through
    the centres of the region's own boundary pixels, exteriors and holes alike, so those pixels belong
    to the region, and decode fills each polygon with its outline. In a continuous frame where pixel
    (x, y) covers [x, x+1) x [y, y+1), the same point is (x + 0.5, y + 0.5); ls_regions uses that frame.

    tolerance (pixels) is approxPolyDP's epsilon; 0 keeps the traced boundary, which decode turns back
    into the same mask. A component one pixel thin has an exterior of 1 or 2 points (no area); decode
    still draws it.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    m = check_mask(mask).view(np.uint8)
    box = bounding_box(m)
    if box is None:
        return []
    x1, y1, x2, y2 = box
    ox, oy = max(x1 - 1, 0), max(y1 - 1, 0)
    return _trace(np.ascontiguousarray(m[oy:y2 + 2, ox:x2 + 2]), ox, oy, tolerance)


def _trace(crop: np.ndarray, ox: int, oy: int, tolerance: float) -> list[dict]:
    # crop: uint8, non-zero inside, the mask's bounding box plus a one-pixel margin (what lies outside
    # is background, as findContours assumes beyond the image edge), starting at (ox, oy) in the image.
    # Traced there and offset back: the same contours in the same order, at the cost of the box.
    contours, hierarchy = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE, offset=(ox, oy))
    if hierarchy is None:
        return []
    tree = hierarchy.reshape(-1, 4)  # next, previous, first child, parent
    out = []
    for i, contour in enumerate(contours):
        if tree[i, 3] != -1:
            continue  # a hole; collected under its parent
        holes = []
        child = tree[i, 2]
        while child != -1:
            holes.append(_simplify(contours[child], tolerance))
            child = tree[child, 0]
        out.append({"exterior": _simplify(contour, tolerance), "holes": holes})
    return out


def encode_label_map(label_map: np.ndarray | LabelLayers, class_ids: Iterable[int] | None = None,
                     tolerance: float = DEFAULT_TOLERANCE) -> dict[int, list[dict]]:
    """{class_id: polygons} for each class present (only those in class_ids if given)."""
    layers = as_layers(label_map)
    present = wanted_present(layers, class_ids)
    if present and tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    return {cid: _trace(*layers.crop(cid), tolerance) for cid in present}


def _ring(points: Sequence, what: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty list of [x, y] points")
    return np.rint(arr).astype(np.int32).reshape(-1, 1, 2)


def decode(polygons: Sequence[Mapping], height: int, width: int) -> np.ndarray:
    """Bool mask (H, W) from polygons: exteriors filled, hole interiors cut, hole outlines kept."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    rings = []
    for k, poly in enumerate(polygons):
        try:
            ext = _ring(poly["exterior"], f"polygon {k} exterior")
            holes = [_ring(h, f"polygon {k} hole") for h in poly.get("holes", [])]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"polygon {k} is not {{'exterior': [...], 'holes': [...]}} ({exc})") from None
        rings.append((abs(cv2.contourArea(ext)), ext, holes))
    # Largest first: a component inside another's hole has a smaller exterior, so it is drawn after the
    # hole is cut rather than erased by it.
    rings.sort(key=lambda r: -r[0])
    for _, ext, holes in rings:
        cv2.fillPoly(canvas, [ext], 1)  # fillPoly includes the outline, so 1-2 point exteriors draw too
        if holes:
            cv2.fillPoly(canvas, holes, 0)
            cv2.polylines(canvas, holes, True, 1)  # hole contours run through the region's own pixels
    return canvas.astype(bool)


def decode_label_map(polygons: Mapping[int, Sequence[Mapping]], height: int, width: int) -> np.ndarray:
    """Label map (H, W) uint8 from {class_id: polygons}; later classes win where they overlap."""
    out = np.zeros((height, width), dtype=np.uint8)
    for cid, polys in polygons.items():
        out[decode(polys, height, width)] = int(cid)
    return out


def ls_regions(polygons: Mapping[int, Sequence[Mapping]], width: int, height: int, labels: Mapping[int, str],
               from_name: str = "tag", to_name: str = "image",
               score: float | Mapping[int, float] | None = None) -> list[dict]:
    """Label Studio polygonlabels results: one closed region per exterior of each labelled class.

    Points are percent of width and height (0-100, 4 decimals) of pixel centres, (x + 0.5) / W * 100.
    Label Studio polygons have no holes, so holes are dropped (the region covers them; use brush
    regions where holes matter), as are exteriors under 3 points, which Label Studio cannot draw.
    Classes missing from labels are left out; score is one value or {class_id: score}.
    """
    scale = np.array([100.0 / width, 100.0 / height])
    out = []
    for cid, polys in polygons.items():
        if cid not in labels:
            continue
        s = score.get(cid) if isinstance(score, Mapping) else score
        for poly in polys:
            pts = np.asarray(poly["exterior"], dtype=np.float64).reshape(-1, 2)
            if len(pts) < 3:
                continue
            region = {
                "from_name": from_name, "to_name": to_name, "type": "polygonlabels",
                "original_width": int(width), "original_height": int(height), "image_rotation": 0,
                "value": {"points": np.round((pts + 0.5) * scale, 4).tolist(), "closed": True,
                          "polygonlabels": [labels[cid]]},
            }
            if s is not None:
                region["score"] = float(s)
            out.append(region)
    return out
