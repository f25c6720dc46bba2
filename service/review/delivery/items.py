"""One image of a delivery package (DeliveryItem) and the checks it must pass before anything is written.
Image ids become file names on the receiver's machine, so they are validated, never silently rewritten;
sizes are read from the photo's header (EXIF orientation applied), without decoding its pixels.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.images import reason
from models.taxonomy import Taxonomy

__all__ = ["DeliveryError", "DeliveryItem", "FLAG_REASON", "check_image_id", "sanitize_image_id"]

FLAG_REASON = "no approved mask"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
# Names Windows will not create whatever the extension: a package unzipped there must not lose files.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}
_EXTRA_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


class DeliveryError(ValueError):
    """The package cannot be written as asked; nothing was written."""


def check_image_id(image_id: str) -> str:
    """`image_id` unchanged if it is safe as a file stem everywhere, else DeliveryError saying why."""
    if not isinstance(image_id, str) or not _ID.fullmatch(image_id):
        raise DeliveryError(f"image id {image_id!r} is not usable as a file name: use 1-120 characters of "
                            "letters, digits, '.', '_' or '-', starting with a letter or digit "
                            "(sanitize_image_id() makes one)")
    if image_id.endswith(".") or image_id.split(".")[0].lower() in _RESERVED:
        raise DeliveryError(f"image id {image_id!r} is not a valid file name on Windows")
    return image_id


def sanitize_image_id(raw: str) -> str:
    """A valid image id made from any string (a file name, an external id): other characters become '_'."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(raw)).strip("._-")[:120].rstrip(".")
    if not s:
        raise DeliveryError(f"cannot make an image id from {raw!r}")
    if s.split(".")[0].lower() in _RESERVED:
        s = f"img_{s}"[:120]
    return check_image_id(s)


@dataclass
class DeliveryItem:
    """One image to deliver: its photo, its final label map and what is known about how it was made."""
    image_id: str                                    # file stem in the package (validated, unique per package)
    image_path: Path | str                           # the original photo, copied byte for byte
    # (H, W) integer ids of the taxonomy, or a callable loading it (called once, while the package is
    # written, so a large batch is never all in memory); None only for an item without any mask.
    label_map: np.ndarray | Callable[[], np.ndarray] | None
    approved: bool                                   # the mask passed review; others are refused or flagged
    width: int | None = None                         # displayed size; checked against photo and label map
    height: int | None = None
    annotator: str | None = None
    reviewer: str | None = None
    qa_status: str | None = None
    notes: str | None = None
    draft_model_version: str | None = None           # the model that drew the draft the annotator corrected
    effort: Mapping[str, Any] | Any | None = None    # service.review.effort.Effort or its to_dict()
    extra: Mapping[str, Any] = field(default_factory=dict)  # more scalar columns (correction id, sha256...)

    def load_label_map(self) -> np.ndarray | None:
        return self.label_map() if callable(self.label_map) else self.label_map

    def effort_dict(self) -> dict | None:
        if self.effort is None:
            return None
        return dict(self.effort.to_dict() if hasattr(self.effort, "to_dict") else self.effort)


def check_items(items: Iterable[DeliveryItem], include_unapproved: bool) -> list[DeliveryItem]:
    """The items as a list if the package can be written from them; else DeliveryError naming every culprit.

    Only what is cheap is checked here (ids, approval, files present); label maps are checked while
    they are written, one at a time.
    """
    items = list(items)
    if not items:
        raise DeliveryError("no items to deliver")
    seen: dict[str, str] = {}
    for it in items:
        if not isinstance(it, DeliveryItem):
            raise DeliveryError(f"expected DeliveryItem, got {type(it).__name__}")
        check_image_id(it.image_id)
        # Case-insensitive: two ids differing only in case collide on macOS and Windows file systems.
        key = it.image_id.lower()
        if key in seen:
            raise DeliveryError(f"duplicate image id {it.image_id!r}"
                                + (f" (same file name as {seen[key]!r} ignoring case)" if seen[key] != it.image_id
                                   else ""))
        seen[key] = it.image_id
        _check_extra(it)
    unapproved = [it.image_id for it in items if not it.approved]
    if unapproved and not include_unapproved:
        raise DeliveryError(f"{len(unapproved)} image(s) have no approved mask: {', '.join(unapproved)}; "
                            "approve them, leave them out, or include them as flagged items "
                            "(include_unapproved)")
    missing_mask = [it.image_id for it in items if it.approved and it.label_map is None]
    if missing_mask:
        raise DeliveryError(f"approved item(s) without a label map: {', '.join(missing_mask)}")
    missing = [f"{it.image_id} ({it.image_path})" for it in items if not Path(it.image_path).is_file()]
    if missing:
        raise DeliveryError(f"original image not found for: {', '.join(missing)}")
    return items


def _check_extra(it: DeliveryItem) -> None:
    for k, v in it.extra.items():
        if not isinstance(k, str) or not _EXTRA_KEY.fullmatch(k):
            raise DeliveryError(f"{it.image_id}: extra key {k!r} must be lower-case letters, digits and '_'")
        if v is not None and not isinstance(v, (str, int, float, bool)):
            raise DeliveryError(f"{it.image_id}: extra {k!r} must be a plain value (one CSV cell), got "
                                f"{type(v).__name__}")


def image_info(path: Path) -> tuple[int, int, str]:
    """(width, height, suffix) of a photo as displayed, from its header; the suffix of its own name is
    kept (receivers match files by name), the format's usual one only when the name has none."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            # EXIF orientations 5-8 turn the photo a quarter: the displayed size (what masks are drawn
            # at) is the stored one transposed.
            if img.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
            fmt = img.format or ""
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DeliveryError(f"{path}: not a readable image ({reason(exc)})") from None
    suffix = path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", path.suffix) else _SUFFIX.get(fmt, ".img")
    return w, h, suffix


def checked_label_map(it: DeliveryItem, taxonomy: Taxonomy, size: tuple[int, int]) -> np.ndarray | None:
    """The item's label map as (H, W) uint8 ids of `taxonomy` at the photo's displayed size (w, h)."""
    raw = it.load_label_map()
    if raw is None:
        if it.approved:
            raise DeliveryError(f"{it.image_id}: the label map loader returned nothing")
        return None
    arr = np.asarray(raw)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DeliveryError(f"{it.image_id}: label map must be a (H, W) integer array, got {arr.shape} {arr.dtype}")
    w, h = size
    if arr.shape != (h, w):
        raise DeliveryError(f"{it.image_id}: label map is {arr.shape[1]}x{arr.shape[0]} (WxH) but the photo is "
                            f"{w}x{h} as displayed")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= taxonomy.num_classes):
        bad = np.unique(arr[(arr < 0) | (arr >= taxonomy.num_classes)])[:10]
        raise DeliveryError(f"{it.image_id}: class ids {[int(b) for b in bad]} are outside taxonomy {taxonomy.tag} "
                            f"(0..{taxonomy.num_classes - 1})")
    return arr.astype(np.uint8, copy=False)


def check_declared_size(it: DeliveryItem, size: tuple[int, int]) -> None:
    # A declared size that disagrees with the photo means the metadata describes another file.
    w, h = size
    if (it.width is not None and it.width != w) or (it.height is not None and it.height != h):
        raise DeliveryError(f"{it.image_id}: declared size {it.width}x{it.height} but the photo is {w}x{h} "
                            "as displayed")
