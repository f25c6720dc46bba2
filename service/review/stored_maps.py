"""Loading what a worklist item's analyses need: the photo, the draft, its confidence, the correction.

A correction that carried its own draft is compared with that draft; otherwise with the worklist's,
so corrections made in any tool count. Confidence is used only with the worklist's own draft.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from models.images import decode_image, read_label_map
from models.taxonomy import Taxonomy, load_taxonomy
from service.store.files import FileStore
from service.store.tables import Correction, WorkItem


@lru_cache(maxsize=8)
def taxonomy_for(tag: str) -> Taxonomy:
    """The taxonomy a stored tag ('fashion-13@1') names; refuses a version this install does not have."""
    tax = load_taxonomy(tag.split("@", 1)[0])
    if tax.tag != tag:
        raise ValueError(f"stored taxonomy {tag} but this install has {tax.tag}")
    return tax


@dataclass
class DraftPair:
    """A correction and the draft it is measured against (None when no draft is known)."""

    correction: Correction
    final: np.ndarray
    draft: np.ndarray | None
    confidence: np.ndarray | None          # float32 0..1, only with the worklist's draft
    model_version: str | None


def photo(files: FileStore, item: WorkItem) -> np.ndarray:
    return decode_image(files.path(item.image.path), origin=item.image_id)


def item_draft(files: FileStore, item: WorkItem) -> np.ndarray:
    return read_label_map(files.path(item.draft_mask_path))


def item_confidence(files: FileStore, item: WorkItem) -> np.ndarray:
    return read_label_map(files.path(item.confidence_path)).astype(np.float32) / 255.0


def correction_map(files: FileStore, correction: Correction) -> np.ndarray:
    return read_label_map(files.path(correction.mask_path))


def draft_pair(files: FileStore, correction: Correction, item: WorkItem | None) -> DraftPair:
    final = correction_map(files, correction)
    if correction.draft_mask_path:
        draft = read_label_map(files.path(correction.draft_mask_path))
        version = correction.draft_model_version
        same = item is not None and draft.shape == final.shape and np.array_equal(draft, item_draft(files, item))
        conf = item_confidence(files, item) if same else None
        return DraftPair(correction, final, draft, conf, version)
    if item is not None:
        return DraftPair(correction, final, item_draft(files, item), item_confidence(files, item),
                         item.worklist.model_version)
    return DraftPair(correction, final, None, None, correction.draft_model_version)
