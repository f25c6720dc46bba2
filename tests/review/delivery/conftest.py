"""Fixtures for the delivery package tests: drawn photos with known label maps, and real CCP photos with
their masks mapped to fashion-13 (the data lives in shared/ beside the repository; missing data fails).
"""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tests.conftest import CCP  # noqa: E402


def write_photo(path: Path, width: int, height: int, orientation: int | None = None, seed: int = 0) -> Path:
    """A noisy RGB photo of width x height pixels as stored (JPEG if the suffix says so)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    kwargs = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    img.save(path, **kwargs)
    return path


def tree(root: Path) -> dict[str, bytes]:
    """{relative posix path: bytes} of every file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def ccp_photo():
    return lambda image_id: CCP / "images" / f"{image_id}.jpg"
