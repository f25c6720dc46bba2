"""Fixtures for the job-queue tests: a fresh store with quick worker timings, and approved corrections whose
masks are the tiny model's own predictions (so the tiny model scores exactly 1.0 on them).

Settings are built in code (no .env); the tiny model comes from tests/conftest.py (trained once per session).
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "default"


def job_settings(tmp: Path, **overrides):
    from service.settings import Settings

    values = {"data_dir": tmp / "data", "model_dir": DEFAULT_MODEL, "threads": 1,
              "warmup": False, "worker_poll_s": 0.2, "worker_heartbeat_s": 0.5, "worker_stale_s": 5.0,
              "worker_nice": 0, "model_poll_s": 0, **overrides}
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path):
    return job_settings(tmp_path)


@pytest.fixture
def store(settings):
    from service.store.db import store_from_settings

    s = store_from_settings(settings)
    yield s
    s.close()


def seed_model(store, settings, model_dir: Path) -> str:
    """Register `model_dir` and make it current, as the server does at its first start."""
    from service.store.models_registry import register_model, set_current

    with store.session() as s:
        version = register_model(s, settings.model_store_dir, model_dir).version
        set_current(s, version, actor="test")
    return version


def approve_predictions(store, model_dir: Path, images: list[Path]) -> list[str]:
    """Store each photo with the model's own prediction as an approved correction; returns image sha256s."""
    from models.images import decode_image
    from service.drafting.predictor import Predictor
    from service.store.corrections import save_correction

    predictor = Predictor(model_dir, backend="onnx", threads=1)
    shas = []
    with store.session() as s:
        for path in images:
            data = path.read_bytes()
            labels = predictor.predict(decode_image(data)).labels
            row = save_correction(s, store.files, image_bytes=data, label_map=labels, taxonomy=predictor.taxonomy,
                                  source="import", status="approved", external_id=path.name)
            shas.append(row.image_sha256)
    return shas
