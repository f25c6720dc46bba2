"""Shared fixtures: the real CCP folder, a tiny downscaled copy of it, and a tiny trained model.

The tiny copy keeps real photos and real labels but at a quarter of the size, so a training run
of a few steps, an export and an evaluation each take seconds on two CPU cores.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CCP = REPO.parent / "shared" / "data" / "ccp"
DEFAULT_MODEL = REPO / "models" / "default"

# Small enough to train in seconds, real enough to exercise every code path.
TINY_CONFIG = {
    "encoder": "tu-regnetx_002", "encoder_weights": None, "decoder_channels": [16, 16, 16, 16, 16], "long_side": 128, "crop": [128, 96],
    "batch_size": 4, "epochs": 2, "val_percent": 25.0, "threads": 2, "lr": 0.002,
}


@pytest.fixture(scope="session")
def ccp() -> Path:
    assert CCP.is_dir(), f"the CCP dataset is expected at {CCP}"
    return CCP


def make_small_copy(src: Path, dst: Path, ids: list[str], scale: float = 0.25) -> Path:
    from training.dataset import write_downscaled_copy

    return write_downscaled_copy(src, dst, ids, scale)


@pytest.fixture(scope="session")
def tax():
    from models.taxonomy import load_taxonomy

    return load_taxonomy("fashion-13")


@pytest.fixture(scope="session")
def tiny_data(ccp, tmp_path_factory) -> Path:
    ids = sorted(p.stem for p in (ccp / "images").glob("*.jpg"))[:16]
    return make_small_copy(ccp, tmp_path_factory.mktemp("tiny") / "data", ids)


@pytest.fixture(scope="session")
def tiny_config_file(tmp_path_factory) -> Path:
    import yaml

    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tiny_config_file, tmp_path_factory) -> Path:
    """A finished two-epoch training run on the tiny data (session-wide: trained once)."""
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    train(tiny_data, out, TrainConfig.from_file(tiny_config_file), log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_run, ccp, tmp_path_factory) -> Path:
    from models.images import decode_image
    from training.export import export_model

    photos = [decode_image(ccp / "images" / f"{i}.jpg") for i in ("0001", "0002")]
    out = tmp_path_factory.mktemp("models") / "tiny"
    export_model(tiny_run / "best", out, parity_images=photos)
    return out


def label_map_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array.astype(np.uint8)).save(path)
