"""The scripted demonstration (bench/demo_retrain.py) at tiny scale: a real `tailor serve` with its worker,
corrections over REST, the every-N trigger, retraining, the gate and the hot swap; held-out mIoU must rise.

Slow (minutes of CPU training): excluded from the default run; `pytest -m slow tests/bench` runs it.
"""
from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_demo_retrain_promotes_a_better_model(tmp_path):
    from bench.demo_retrain import main

    report = main(["--initial", "12", "--corrections", "24", "--heldout", "12", "--initial-epochs", "4",
                   "--retrain-epochs", "3", "--no-control", "--workdir", str(tmp_path / "demo")])
    assert report["decision"] == "promoted"
    assert report["served_after"] == report["candidate"] != report["before_version"]  # the server swapped
    assert report["gate_after"] >= report["gate_before"]
    assert report["heldout_after"] > report["heldout_before"]
    assert report["trained_on"] + report["eval_set"] == report["corrections"] == 24
