"""Every threshold the QA checks, the left/right split, effort, agreement and the worklist use, in one place.
Pixel values are calibrated on CCP-sized photos (about 550 x 830); scale them for other resolutions.
The app's pydantic settings wrap this dataclass; nothing here reads the environment.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class QAThresholds:
    # --- empty_margins -------------------------------------------------------------------------------
    # Background gaps up to this width (px) between garments are "slivers": the closing kernel that finds
    # them has radius ceil(width / 2), so wider gaps (a real gap between arm and torso) are left alone.
    margin_max_width_px: int = 4
    # A sliver must cover at least this many pixels to be reported; smaller ones are corner wedges that
    # any closing fills where two regions meet at an angle, and not worth an annotator's click.
    margin_min_area_px: int = 20
    # Background holes not touching the image border and fully enclosed by garments are reported whatever
    # their width when at most this big; bigger enclosed holes are real (arm akimbo, gap between legs).
    margin_enclosed_max_area_px: int = 150

    # --- islands -------------------------------------------------------------------------------------
    # A connected part of a class smaller than this (px) is a stray fragment, not a garment piece.
    island_min_area_px: int = 40
    # ... or smaller than this fraction of the class's largest part (a speck next to a big coat). Kept low
    # so a partly hidden second shoe (often 20-50 % of the first) is not called an island.
    island_min_fraction: float = 0.02

    # --- overlaps ------------------------------------------------------------------------------------
    # Connected areas claimed by two or more per-class layers are reported from this size (px) up; one
    # pixel already means the export is ambiguous, so the default reports every overlap.
    overlap_min_area_px: int = 1

    # --- missing_classes -----------------------------------------------------------------------------
    # A draft pixel counts as confident from this model confidence (softmax max) up.
    missing_min_confidence: float = 0.8
    # A class the draft shows confidently over at least this many pixels, but the correction lacks
    # entirely, is reported: the annotator may have erased a real garment.
    missing_min_area_px: int = 300

    # --- disagreement --------------------------------------------------------------------------------
    # The draft must be at least this confident where it disagrees for the region to count.
    disagreement_min_confidence: float = 0.8
    # Connected confident disagreements from this size (px) up are reported (pants vs legwear on a leg).
    disagreement_min_area_px: int = 300
    # Whether draft-background vs correction-garment (and vice versa) counts; off by default because
    # adding or erasing a region is the ordinary correction, the catch is one garment class for another.
    disagreement_include_background: bool = False

    # --- left / right (paired classes) ---------------------------------------------------------------
    # Parts of a paired class below this size (px) are fragments: they follow the nearest real part.
    lr_min_part_area_px: int = 80
    # ... or below this fraction of the class's largest part.
    lr_min_part_fraction: float = 0.1
    # A single part is two touching limbs (and is split) when each side of the midline holds at least
    # this fraction of it; otherwise it is one limb (the other hidden) and goes whole to its side.
    lr_split_min_side_fraction: float = 0.2
    # A sock or shoe hangs from both legs above it when each side holds at least this fraction of the sided
    # leg pixels just above it (a leg's hem may end higher, so less than the split fraction suffices).
    lr_follow_min_side_fraction: float = 0.1
    # A lone part with a background gap inside it (between legs) on at least this fraction of its rows
    # holds two limbs, and is cut through that gap.
    lr_two_limb_gap_rows: float = 0.1
    # When splitting touching limbs row by row, a background gap within this distance (px) of the midline
    # is used as the cut instead of the midline itself, so the cut follows the visible gap between legs.
    lr_gap_snap_px: int = 20
    # A part whose centroid lies within this distance (px) of the midline is "central": no side is
    # claimed for it by the same-side check (feet together under the body are not an error).
    lr_side_tolerance_px: int = 6
    # Two parts whose centroids are at least this far apart horizontally (px) are ordered against each
    # other (image-right one is the person's left) rather than against the body midline.
    lr_min_separation_px: int = 8
    # Classes left out when finding the body's midline: carried things sit off to one side.
    lr_midline_exclude: tuple[str, ...] = ("bag", "accessory")
    # The midline is taken from this top fraction of the body's height (head and torso), where the body
    # is symmetric; legs may be spread, crossed or hidden and would pull it sideways.
    lr_midline_upper_fraction: float = 0.6

    # --- effort and agreement ------------------------------------------------------------------------
    # Boundary pixels within this distance (px) of the other map's boundary count as matching.
    boundary_tolerance_px: int = 2

    # --- worklist ------------------------------------------------------------------------------------
    # A draft pixel below this confidence is "uncertain" (what the annotator will have to look at).
    uncertain_confidence: float = 0.6
    # Uncertain pixels above this share of the image make "uncertain" a stated reason for difficulty.
    notable_uncertain_fraction: float = 0.05
    # Classes that are not garments, so never "small garments" (skin and hair come in small bits anyway).
    non_garment_classes: tuple[str, ...] = ("background", "skin", "hair")
    # A connected draft region below this size (px) is a "small region" (slow to draw and check).
    small_region_area_px: int = 400
    # A garment covering less than this fraction of the image is a "small garment" worth a note.
    small_garment_fraction: float = 0.002
    # Classes in less than this fraction of images are rare (used when frequencies are supplied).
    rare_frequency: float = 0.15
    # Rare by default: below 15 % of CCP images (socks 6 %, legwear 12 %); overridden by frequencies.
    rare_classes: tuple[str, ...] = ("legwear", "socks")
    # Predicted effort model, seconds: fixed cost to open, inspect and submit an image ...
    effort_base_s: float = 20.0
    # ... plus this much per class present in the draft (each is checked and maybe redrawn) ...
    effort_per_class_s: float = 6.0
    # ... plus this much per percent of uncertain pixels (the areas most likely to need repainting) ...
    effort_per_uncertain_percent_s: float = 4.0
    # ... plus this much per small region (fiddly to draw or verify) ...
    effort_per_small_region_s: float = 3.0
    # ... plus this much per 100 px of class boundary in the draft (edges are traced by eye).
    effort_per_100px_boundary_s: float = 0.5


def thresholds_from(overrides: dict | None) -> QAThresholds:
    """QAThresholds with some fields replaced, each checked against its default's type and sign."""
    known = {f.name: f for f in fields(QAThresholds)}
    unknown = sorted(set(overrides or {}) - set(known))
    if unknown:
        raise ValueError(f"qa: {unknown} are not QA thresholds (known: {', '.join(sorted(known))})")
    base, values = QAThresholds(), {}
    for name, value in (overrides or {}).items():
        default = getattr(base, name)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"qa.{name} must be true or false, got {value!r}")
        elif isinstance(default, tuple):
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"qa.{name} must be a list of class names, got {value!r}")
            value = tuple(value)
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"qa.{name} must be a number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise ValueError(f"qa.{name} must be a whole number, got {value!r}")
            if value < 0:
                raise ValueError(f"qa.{name} must not be negative, got {value!r}")
            value = type(default)(value)
        values[name] = value
    return replace(base, **values)
