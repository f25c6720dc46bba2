"""Refine a draft with clicks and strokes, grown over the model's kept per-class scores: no second model call.

A click relabels the connected area where its class is plausible, a negative click hands a region to
each pixel's runner-up, a stroke relabels its pixels and the similar ones around them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from service.drafting.scores import PhotoScores, component_at, components_touching, distance_to, drafted_region

MAX_EDITS = 500            # per refine: a session of clicks, not a bulk job
MAX_STROKE_POINTS = 5000
MAX_STROKE_WIDTH = 101
FIELDS = {"kind", "x", "y", "class", "to", "points", "width", "id"}  # "id": the client's own, ignored


class EditError(ValueError):
    """An edit (or the draft it applies to) is malformed, names an unknown class or lies outside the photo."""


@dataclass(frozen=True)
class Click:
    """"The region under (x, y) is this class"."""
    x: int
    y: int
    class_id: int


@dataclass(frozen=True)
class Remove:
    """"The region under (x, y) is not its class": to each pixel's runner-up, or to `to` when given."""
    x: int
    y: int
    to: int | None = None


@dataclass(frozen=True)
class Stroke:
    """"These pixels are this class, and so are the similar pixels around them"."""
    points: tuple[tuple[int, int], ...]
    class_id: int
    width: int = 5


@dataclass(frozen=True, eq=False)
class Paint:
    """A stroke given as the pixels it painted (a Label Studio brush stroke) rather than as a line."""
    mask: np.ndarray   # (H, W) bool at the photo's size
    class_id: int


Edit = Click | Remove | Stroke | Paint


@dataclass(frozen=True)
class GrowthSettings:
    """How far an edit grows. Defaults chosen with bench/bench_refine.py on CCP val photos, where most of
    them moved NoC less than the spread between photo subsets (colour edges for clicks: no clear gain)."""
    plausible: float = 0.1        # class prob / strongest rival's at or above which a class is plausible
    slack: float = 1.0            # log-ratio below the click's own value that its growth still takes
    spread: float = 0.5           # the same ratio, needed beyond the drafted region under a click
    max_share: float = 0.1        # of the photo: the most a click may take where its class is implausible
    colour_edge: float | None = None  # Lab gradient that cuts a growth (None: ignore colour)
    stroke_reach: int = 60        # px around a stroke that its growth may cover
    stroke_colour: float = 25.0   # Lab distance from the stroke's mean colour still called similar


def parse_edits(raw: Iterable, scores: PhotoScores) -> list[Edit]:
    """JSON-shaped edits -> Edit objects, every one checked before any applies.

    {"x": 120, "y": 340, "class": "skirt"}                  click
    {"x": 120, "y": 340, "class": null}                     negative click: to each pixel's runner-up
    {"x": 120, "y": 340, "class": null, "to": "background"} negative click to a named class
    {"points": [[x, y], ...], "class": "skirt", "width": 5}  stroke (width optional, pixels)
    An optional "kind" ("click", "remove", "stroke") is checked against the shape.
    """
    if isinstance(raw, (str, bytes, dict)) or not isinstance(raw, Iterable):
        raise EditError("edits must be a list")
    edits = list(raw)
    if len(edits) > MAX_EDITS:
        raise EditError(f"{len(edits)} edits in one refine; at most {MAX_EDITS}")
    return [_parse_edit(edit, i, scores) for i, edit in enumerate(edits)]


def _parse_edit(edit, index: int, scores: PhotoScores) -> Edit:
    where = f"edit {index}"
    if isinstance(edit, Paint):
        if edit.mask.shape != scores.size or not edit.mask.any():
            raise EditError(f"{where}: a painted stroke must be a non-empty mask of the photo's size {scores.size}, "
                            f"got {edit.mask.shape}")
        return edit
    if isinstance(edit, (Click, Remove, Stroke)):
        return edit  # built by code, not taken from a request
    if not isinstance(edit, dict):
        raise EditError(f"{where}: must be an object, got {type(edit).__name__}")
    unknown = sorted(str(key) for key in edit.keys() - FIELDS)
    if unknown:
        raise EditError(f"{where}: unknown fields {unknown} (known: {', '.join(sorted(FIELDS))})")
    kind = edit.get("kind")
    if kind is not None and kind not in ("click", "remove", "stroke"):
        raise EditError(f"{where}: unknown kind {kind!r} (click, remove or stroke)")
    removes = kind == "remove" or ("class" in edit and edit["class"] is None)
    shape = "stroke" if "points" in edit else ("remove" if removes else "click")
    if kind is not None and kind != shape:
        raise EditError(f"{where}: kind {kind!r} does not fit its fields (they make a {shape}; "
                        "a click and a stroke need a class)")
    if shape == "remove":
        if edit.get("class") is not None:
            raise EditError(f"{where}: a negative click has no class (\"to\" names where the region goes)")
        to = edit.get("to")
        return Remove(*_point(edit.get("x"), edit.get("y"), where, scores),
                      None if to is None else _class(to, where, scores))
    class_id = _class(edit.get("class"), where, scores)
    if shape == "click":
        return Click(*_point(edit.get("x"), edit.get("y"), where, scores), class_id)
    points = edit["points"]
    if not isinstance(points, list) or not points:
        raise EditError(f"{where}: points must be a non-empty list of [x, y]")
    if len(points) > MAX_STROKE_POINTS:
        raise EditError(f"{where}: {len(points)} stroke points; at most {MAX_STROKE_POINTS}")
    parsed = []
    for p in points:
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise EditError(f"{where}: stroke point {p!r} is not [x, y]")
        parsed.append(_point(p[0], p[1], where, scores))
    width = edit.get("width", Stroke.width)
    if not _is_number(width) or not 1 <= width <= MAX_STROKE_WIDTH:
        raise EditError(f"{where}: width must be a number of pixels from 1 to {MAX_STROKE_WIDTH}")
    return Stroke(tuple(parsed), class_id, int(round(width)))


def _point(x, y, where: str, scores: PhotoScores) -> tuple[int, int]:
    if not (_is_number(x) and _is_number(y)):
        raise EditError(f"{where}: x and y must be numbers (photo pixels), got {x!r}, {y!r}")
    height, width = scores.size
    px, py = math.floor(x), math.floor(y)  # pixel (i, j) covers [i, i + 1) x [j, j + 1)
    if not (0 <= px < width and 0 <= py < height):
        raise EditError(f"{where}: point ({x}, {y}) is outside the photo ({width}x{height})")
    return px, py


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _class(name, where: str, scores: PhotoScores) -> int:
    if not isinstance(name, str):
        raise EditError(f"{where}: class must be a class name, got {name!r}")
    try:
        return scores.class_id(name)
    except KeyError:
        raise EditError(f"{where}: unknown class {name!r} (known: {', '.join(scores.class_names)})") from None


class Refinement:
    """A draft being refined edit by edit. Pixels an edit set are kept from later edits' growth,
    except where a later edit is placed on them itself.
    """

    def __init__(self, scores: PhotoScores, draft: np.ndarray | None = None,
                 settings: GrowthSettings = GrowthSettings()):
        self.scores, self.settings = scores, settings
        if draft is None:
            draft = scores.draft()
        elif draft.shape != scores.size or draft.dtype.kind not in "ui" or (
                draft.size and int(draft.max()) >= len(scores.class_names)):
            raise EditError(f"draft must be a {scores.size[1]}x{scores.size[0]} map of class ids "
                            f"0..{len(scores.class_names) - 1}, got {draft.shape} {draft.dtype}")
        self.labels = draft.astype(np.uint8, copy=True)
        self.set_by = np.zeros(scores.size, dtype=np.int32)  # 0: draft; n: the n-th edit applied
        self.applied = 0
        self._edits: list[Edit] = []
        self._lab: np.ndarray | None = None
        self._edges: np.ndarray | None = None

    def apply(self, edit: Edit | dict) -> int:
        """Apply one edit; returns how many pixels changed class."""
        if isinstance(edit, dict):
            edit = _parse_edit(edit, self.applied, self.scores)
        if isinstance(edit, Click):
            region, new = self._click(edit), edit.class_id
        elif isinstance(edit, Remove):
            region, new = self._remove(edit)
        else:
            region, new = self._stroke(edit), edit.class_id
        self.applied += 1
        self._edits.append(edit)
        before = self.labels[region]
        after = new[region] if isinstance(new, np.ndarray) else np.uint8(new)
        changed = int(np.count_nonzero(before != after))
        self.labels[region] = after
        self.set_by[region] = self.applied
        return changed

    def _seed(self, edit: Edit) -> np.ndarray:
        """(H, W) bool: the pixels the annotator placed the edit on."""
        if isinstance(edit, Paint):
            return edit.mask.astype(bool)
        seed = np.zeros(self.scores.size, dtype=np.uint8)
        if isinstance(edit, Stroke):
            cv2.polylines(seed, [np.array(edit.points, dtype=np.int32)], False, 1, thickness=edit.width)
            points = edit.points
        else:
            points = ((edit.x, edit.y),)
        seed[points[-1][1], points[-1][0]] = 1  # a one-point stroke is a dot
        return seed.view(bool)

    def _free_for(self, seed: np.ndarray) -> np.ndarray:
        """Pixels an edit placed on `seed` may take: the draft's, and of an earlier edit's that it is placed
        on, the part nearer to this edit than to that one (so two edits split a contested area, never
        take it back and forth whole).
        """
        free = self.set_by == 0
        owners = [int(o) for o in np.unique(self.set_by[seed]) if o]
        if owners:
            here = distance_to(seed)
            for owner in owners:
                free |= (self.set_by == owner) & (here < distance_to(self._seed(self._edits[owner - 1])))
        return free | seed

    def _grow(self, allowed: np.ndarray, seed: np.ndarray) -> np.ndarray:
        """The connected parts of `allowed` (seed included) that touch the seed, not across colour edges."""
        allowed = allowed | seed
        cut = self._colour_edges()
        if cut is None:
            return components_touching(allowed, seed)
        region = components_touching(allowed & ~cut | seed, seed)
        # The edge lines themselves are one or two pixels wide: the region takes those along its border.
        ring = cv2.dilate(region.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
        return region | (ring & cut & allowed)

    def _click(self, click: Click) -> np.ndarray:
        x, y, k, s = click.x, click.y, click.class_id, self.settings
        seed = self._seed(click)
        margin = self.scores.margin(k)
        free = self._free_for(seed)
        here = float(margin[y, x])
        # Inside the drafted region under the click the class need only be plausible or, where the model
        # is confident it is wrong, about as plausible as at the click: the model cannot say where a class
        # it rules out ends, so the drafted outline stands in. Beyond that region the class must come close
        # to the model's own choice, or a click would spill into neighbouring garments.
        drafted = drafted_region(self.labels, x, y)
        beyond = (margin >= math.log(s.spread)) & free

        def grown(threshold: float) -> np.ndarray:
            return self._grow((margin >= threshold) & free & drafted | beyond, seed)

        floor = min(math.log(s.plausible), here - s.slack)
        region = grown(floor)
        cap = s.max_share * margin.size
        implausible = margin < math.log(s.plausible)
        if np.count_nonzero(region & implausible) > cap:
            # Spread far where the model rules the class out (a click on the background): the most
            # plausible connected area around the click that fits, by bisection on the threshold.
            low, high = floor, max(floor, here)
            for _ in range(10):
                middle = (low + high) / 2
                if np.count_nonzero(grown(middle) & implausible) > cap:
                    low = middle
                else:
                    high = middle
            region = grown(high)
            if np.count_nonzero(region & implausible) > cap:  # a flat field: the nearest pixels that fit
                region = component_at(region & (distance_to(seed) <= math.sqrt(cap / math.pi)), x, y)
        return region

    def _remove(self, remove: Remove) -> tuple[np.ndarray, np.ndarray | int]:
        x, y = remove.x, remove.y
        current = int(self.labels[y, x])
        if remove.to is None and current == 0:
            raise EditError(f"edit {self.applied}: point ({x}, {y}) is background, nothing to remove "
                            "(click with a class instead)")
        seed = self._seed(remove)
        region = component_at(drafted_region(self.labels, x, y) & self._free_for(seed), x, y, connectivity=8)
        return region, (self.scores.labels_without(current) if remove.to is None else remove.to)

    def _stroke(self, stroke: Stroke | Paint) -> np.ndarray:
        s, k = self.settings, stroke.class_id
        seed = self._seed(stroke)
        margin = self.scores.margin(k)
        # A stroke may graze a neighbouring garment: its low end, not its minimum, says how plausible the
        # class has to be for the similar pixels around it.
        floor = min(math.log(s.plausible), float(np.percentile(margin[seed], 10)) - s.slack)
        allowed = (margin >= floor) & (distance_to(seed) <= s.stroke_reach) & self._free_for(seed)
        if self.scores.image is not None:
            lab = self._colour()
            allowed &= np.linalg.norm(lab - lab[seed].mean(axis=0), axis=2) <= s.stroke_colour
        return self._grow(allowed, seed)

    def _colour(self) -> np.ndarray:
        if self._lab is None:
            rgb = self.scores.image.astype(np.float32) * (1.0 / 255.0)
            self._lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (3, 3), 0), cv2.COLOR_RGB2Lab)
        return self._lab

    def _colour_edges(self) -> np.ndarray | None:
        """Pixels on a colour edge (Lab gradient over the setting), or None when colour is not used."""
        if self.settings.colour_edge is None or self.scores.image is None:
            return None
        if self._edges is None:
            lab = self._colour()
            gx, gy = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
            strength = np.sqrt((gx * gx + gy * gy).sum(axis=2)) * 0.125  # Sobel's 3x3 weights sum to 8
            self._edges = strength >= self.settings.colour_edge
        return self._edges


def refine(scores: PhotoScores, edits: Iterable, draft: np.ndarray | None = None,
           settings: GrowthSettings = GrowthSettings()) -> np.ndarray:
    """The draft (the model's own when None) with `edits` applied in order: (H, W) uint8 class ids."""
    parsed = parse_edits(edits, scores)
    refinement = Refinement(scores, draft, settings)
    for edit in parsed:
        refinement.apply(edit)
    return refinement.labels
