"""Fixtures for the QA tests: the fashion-13 taxonomy and real CCP masks mapped onto it."""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.images import decode_image, read_label_map  # noqa: E402

from tests.conftest import CCP  # noqa: E402


@pytest.fixture(scope="session")
def ccp_mask(tax):
    """ccp_mask("0001") -> (H, W) uint8 fashion-13 label map of that CCP photo."""
    assert CCP.is_dir(), f"the CCP dataset is expected at {CCP}"
    lut = tax.lut_for_labels((CCP / "labels.txt").read_text().splitlines())
    cache: dict[str, np.ndarray] = {}

    def load(image_id: str) -> np.ndarray:
        if image_id not in cache:
            cache[image_id] = lut[read_label_map(CCP / "masks" / f"{image_id}.png")]
        return cache[image_id].copy()

    return load


@pytest.fixture(scope="session")
def ccp_image():
    return lambda image_id: decode_image(CCP / "images" / f"{image_id}.jpg")
