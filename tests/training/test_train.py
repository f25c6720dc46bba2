"""Training runs on real (downscaled) CCP photos: a smoke run, resume, fine-tuning and DDP on CPU.

These check behaviour, not accuracy: steps happen, the loss is finite, checkpoints round-trip
exactly, and two gloo processes train one model.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from training import checkpoint as ckpt
from training.config import TrainConfig
from training.models import build_model
from training.train import class_weights, make_optimizer, train

REPO = __import__("tests.conftest", fromlist=["REPO"]).REPO


def test_smoke_run_writes_everything(tiny_run):
    for name in ("last/model.safetensors", "last/optimizer.safetensors", "last/state.json", "best/state.json",
                 "curves.png", "confusion.png", "history.json", "config.json"):
        assert (tiny_run / name).is_file(), name
    history = json.loads((tiny_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) and 0 <= h["miou"] <= 1 for h in history)
    state = ckpt.load_state(tiny_run / "last")
    assert state["step"] == 2 * 3  # 12 train images / batch 4 = 3 steps per epoch
    assert state["data"]["train_images"] + state["data"]["val_images"] == 16


def test_resume_continues_where_it_stopped(tiny_data, tiny_config_file, tmp_path):
    """Two epochs then one more on resume equals the same state as a 3-epoch target reached in one go."""
    cfg = TrainConfig.from_file(tiny_config_file, epochs=3)
    out = tmp_path / "run"
    first = train(tiny_data, out, TrainConfig.from_file(tiny_config_file, epochs=3, max_steps=6), log=lambda *_: None)
    assert first["epoch"] == 2 and first["step"] == 6
    saved = ckpt.load_weights(out / "last")
    logs = []
    resumed = train(tiny_data, out, cfg, log=logs.append)
    assert any("resume" in str(line) and "epoch 2" in str(line) for line in logs)
    assert resumed["epoch"] == 3 and resumed["step"] == 9
    assert len(resumed["history"]) == 3
    after = ckpt.load_weights(out / "last")
    assert any(not torch.equal(saved[k], after[k]) for k in saved), "resumed run must keep training"


def test_weight_average_of_the_last_epochs_survives_resume(tiny_data, tiny_config_file, tmp_path):
    """average_epochs=2 of 3: the average is the mean of epochs 2 and 3's weights (kept across a resume),
    gets BatchNorm statistics of its own, is scored, and becomes `best` only when it validates better."""
    out = tmp_path / "run"
    cfg = TrainConfig.from_file(tiny_config_file, epochs=3, average_epochs=2)
    train(tiny_data, out, TrainConfig.from_file(tiny_config_file, epochs=3, average_epochs=2, max_steps=6),
          log=lambda *_: None)  # stops after epoch 2
    epoch2 = ckpt.load_weights(out / "last")
    assert ckpt.load_state(out / "last")["epoch"] == 2
    logs = []
    state = train(tiny_data, out, cfg, log=logs.append)
    epoch3 = ckpt.load_weights(out / "last")
    average = ckpt.load_averaged(out / "last")
    assert int(average["n_averaged"]) == 2
    names = [k for k, _ in build_model(state["arch"]).named_parameters()]
    for name in names:
        torch.testing.assert_close(average[f"module.{name}"], (epoch2[name] + epoch3[name]) / 2)
    bn = next(k for k in epoch3 if k.endswith("running_mean"))
    assert not torch.equal(average[f"module.{bn}"], epoch3[bn])  # re-estimated, not copied
    summary = state["averaged"]
    assert summary["epochs"] == 2 and 0 <= summary["miou"] <= 1
    assert any("average of the last 2 epochs" in str(line) for line in logs)
    best_is_average = state["best"].get("averaged_epochs") == 2
    assert best_is_average == (summary["miou"] > max(r["miou"] for r in state["history"]))
    if best_is_average:
        assert torch.equal(ckpt.load_weights(out / "best")[names[0]], average[f"module.{names[0]}"])
    again = train(tiny_data, out, cfg, log=logs.append)  # finished: nothing is averaged twice
    assert again["averaged"] == summary and int(ckpt.load_averaged(out / "last")["n_averaged"]) == 2


def test_optimizer_state_round_trips(tiny_run, tiny_config_file):
    from training.models import build_model

    state = ckpt.load_state(tiny_run / "last")
    model = build_model(state["arch"])
    model.load_state_dict(ckpt.load_weights(tiny_run / "last"))
    opt = make_optimizer(model, TrainConfig(**state["config"]))
    ckpt.load_optimizer(tiny_run / "last", opt, state["optimizer_meta"])
    restored = opt.state_dict()["state"]
    assert len(restored) == len(list(model.parameters()))
    assert float(restored[0]["step"]) == state["step"]
    assert restored[0]["exp_avg_sq"].abs().sum() > 0


def test_fine_tune_from_model_dir_records_parent(tiny_model, tiny_data, tiny_config_file, tmp_path):
    from models.card import read_card

    cfg = TrainConfig.from_file(tiny_config_file, epochs=1, max_steps=1)
    state = train(tiny_data, tmp_path / "ft", cfg, init_model=tiny_model, log=lambda *_: None)
    assert state["parent"]["version"] == read_card(tiny_model)["version"]


def test_fine_tune_refuses_mismatched_arch(tiny_model, tiny_data, tiny_config_file, tmp_path):
    cfg = TrainConfig.from_file(tiny_config_file, decoder_channels=[32, 16, 16, 16, 16], max_steps=1)
    with pytest.raises(ValueError, match="arch/taxonomy differ"):
        train(tiny_data, tmp_path / "ft", cfg, init_model=tiny_model, log=lambda *_: None)


def test_config_rejects_unknown_and_bad_fields(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("epochz: 3\n")
    with pytest.raises(ValueError, match="unknown fields"):
        TrainConfig.from_file(bad)
    with pytest.raises(ValueError, match="multiple of size_multiple"):
        TrainConfig.from_file(None, crop=[100, 64])
    with pytest.raises(ValueError, match="class_weight_power"):
        TrainConfig.from_file(None, class_weight_power=2)


def test_class_weights_follow_pixel_shares():
    # Shares 3/4, 3/16, 1/16 of the counted pixels; class 3 never occurs; 255 (ignored) is not counted.
    mask = np.array([[0] * 12 + [1] * 3 + [2]] * 4 + [[255] * 16], dtype=np.uint8)
    assert class_weights([mask], 4, 0.0) is None
    w = class_weights([mask[:2], mask[2:]], 4, 0.5).numpy()
    raw = np.array([(3 / 4) ** -0.5, (3 / 16) ** -0.5, (1 / 16) ** -0.5])
    np.testing.assert_allclose(w[:3], raw / raw.mean(), rtol=1e-6)
    assert w[3] == 0.0
    inverse = class_weights([mask], 4, 1.0).numpy()
    assert inverse[2] / inverse[0] == pytest.approx(12.0)


def test_ddp_two_cpu_processes(tiny_data, tiny_config_file, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "service.cli",
           "train", "--data", str(tiny_data), "--out", str(out), "--config", str(tiny_config_file), "--epochs", "1",
           "--threads", "1"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = ckpt.load_state(out / "last")
    # 12 train images split over 2 ranks with batch 4: 6 per rank -> 1 full step per rank (drop_last)
    assert state["epoch"] == 1 and state["step"] == 1
    assert "world 2" in proc.stderr + proc.stdout


def test_cli_set_overrides_any_field(tiny_data, tiny_config_file, tmp_path):
    from typer.testing import CliRunner

    from service.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(tiny_data), "--out", str(out), "--config",
                                      str(tiny_config_file), "--max-steps", "1", "--set", "lr=0.0005",
                                      "--set", "decoder_channels=[8, 8, 8, 8, 8]", "--set", "rotate=0",
                                      "--set", "epochs=1"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 0.0005 and config["decoder_channels"] == [8] * 5 and config["rotate"] == 0
    assert config["epochs"] == 1  # --set wins over an --epochs option left unset (the tiny config has 2)
    bad = CliRunner().invoke(app, ["train", "--data", str(tiny_data), "--out", str(tmp_path / "x"),
                                   "--set", "no_such_field=1"])
    assert bad.exit_code == 2 and "no_such_field" in bad.output
