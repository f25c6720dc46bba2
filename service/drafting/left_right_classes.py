"""The class list of a left/right split: every paired class becomes `<name>_left` then `<name>_right`.
Sides are the person's own (their left is on the image's right), see service.drafting.left_right; the split list
names, colours and numbers the label maps, formats, COCO categories and overlays of a split answer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.taxonomy import Taxonomy, TaxonomyClass

LEFT, RIGHT = "left", "right"


@dataclass(frozen=True)
class SplitClasses:
    """A taxonomy with every paired class replaced by `<name>_left`, `<name>_right` (in that order)."""
    taxonomy: Taxonomy                   # the extended taxonomy, e.g. "fashion-13-lr"; no source mappings
    lut: np.ndarray                      # (256,) old id -> new id; a paired class maps to its _left id
    right_of: dict[int, int]             # old paired id -> new _right id (lut gives the _left one)
    base_of: tuple[int, ...]             # new id -> old id
    side_of: tuple[str | None, ...]      # new id -> "left" / "right" / None

    @property
    def names(self) -> list[str]:
        return self.taxonomy.names

    def palette(self) -> np.ndarray:
        return self.taxonomy.palette()


def split_taxonomy(tax: Taxonomy) -> SplitClasses:
    """Extend `tax`: paired classes become _left (original colour) and _right (colour lightened 45 %)."""
    classes: list[TaxonomyClass] = []
    base: list[int] = []
    side: list[str | None] = []
    used = {c.color for c in tax.classes}

    def add(name: str, color: tuple[int, int, int], base_id: int, which: str | None) -> int:
        classes.append(TaxonomyClass(len(classes), name, color, False))
        base.append(base_id)
        side.append(which)
        return len(classes) - 1

    lut = np.zeros(256, dtype=np.int64)
    right_of = {}
    for c in tax.classes:
        if not c.paired:
            lut[c.id] = add(c.name, c.color, c.id, None)
        else:
            lut[c.id] = add(f"{c.name}_left", c.color, c.id, LEFT)
            right_of[c.id] = add(f"{c.name}_right", _distinct_tint(c.color, used), c.id, RIGHT)
    if len(classes) > 255:
        raise ValueError(f"splitting {tax.tag} gives {len(classes)} classes; label maps hold at most 255")
    ext = Taxonomy(f"{tax.name}-lr", tax.version, tuple(classes), {}, f"{tax.description} (paired classes split "
                   "into the person's left and right; the person's left is on the image's right)".strip())
    return SplitClasses(ext, lut.astype(np.uint8), right_of, tuple(base), tuple(side))


def _distinct_tint(color: tuple[int, int, int], used: set) -> tuple[int, int, int]:
    # Lighter than the left colour so the pair reads as one garment; nudged if it collides with another.
    for mix in (0.45, 0.3, 0.6, 0.2, 0.7):
        tint = tuple(int(round(v + (255 - v) * mix)) for v in color)
        if tint not in used:
            used.add(tint)
            return tint
    raise ValueError(f"cannot find a distinct right-side colour for {color}")
