"""Fixtures for the store tests: a fresh migrated store per test and real CCP photos with fashion-13 masks.

Each store is a SQLite file in a temporary data folder, opened exactly as the service opens it.
"""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.images import read_label_map  # noqa: E402

from tests.conftest import CCP  # noqa: E402


@pytest.fixture(scope="session")
def ccp_pair(tax):
    """ccp_pair("0001") -> (jpeg bytes, (H, W) uint8 fashion-13 label map)."""
    assert CCP.is_dir(), f"the CCP dataset is expected at {CCP}"
    lut = tax.lut_for_labels((CCP / "labels.txt").read_text().splitlines())

    def load(image_id: str) -> tuple[bytes, np.ndarray]:
        return (CCP / "images" / f"{image_id}.jpg").read_bytes(), lut[read_label_map(CCP / "masks" / f"{image_id}.png")]

    return load


@pytest.fixture
def store(tmp_path):
    from service.store import open_store

    s = open_store(tmp_path / "data")
    yield s
    s.close()
