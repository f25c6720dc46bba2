"""Real CCP label maps for the format tests, raw (59 source labels) and mapped to fashion-13.
The data lives in shared/ beside the repository (../shared/data/ccp from the repo root, in CI too),
so its path is computed from this file and nothing is skipped: missing data is a failure.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.images import read_label_map
from models.taxonomy import load_taxonomy

CCP_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ccp"
SAMPLE_SIZE = 6  # evenly spread masks: enough variety (holes, thin straps, many classes), still fast


@pytest.fixture(scope="session")
def ccp_paths() -> list[Path]:
    paths = sorted((CCP_ROOT / "masks").glob("*.png"))
    assert len(paths) >= SAMPLE_SIZE, f"expected CCP masks under {CCP_ROOT / 'masks'}"
    step = len(paths) // SAMPLE_SIZE
    return paths[::step][:SAMPLE_SIZE]


@pytest.fixture(scope="session")
def raw_masks(ccp_paths) -> list[np.ndarray]:
    """CCP label maps with their source ids (0..58), so many small classes per image."""
    return [read_label_map(p) for p in ccp_paths]


@pytest.fixture(scope="session")
def fashion13():
    return load_taxonomy("fashion-13")


@pytest.fixture(scope="session")
def fashion_masks(raw_masks, fashion13) -> list[np.ndarray]:
    """The same label maps mapped to fashion-13 class ids."""
    labels = (CCP_ROOT / "labels.txt").read_text().splitlines()
    lut = fashion13.lut_for_labels(labels)
    mapped = [lut[m] for m in raw_masks]
    assert all(int(m.max()) < fashion13.num_classes for m in mapped)
    return mapped


@pytest.fixture(scope="session")
def all_masks(raw_masks, fashion_masks) -> list[np.ndarray]:
    return raw_masks + fashion_masks
