"""`tailor jobs retrain|evaluate|predict|list|show|cancel|recover` and `tailor worker --once` on a temporary
data folder (TAILOR_DATA_DIR), through the real command line app.

The worker runs an evaluation of the bundled model on a folder of CCP photos with their real masks.
"""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.conftest import make_small_copy

from tests.jobs.conftest import REPO


@pytest.fixture
def env(tmp_path, monkeypatch, ccp):
    root = tmp_path / "root"
    make_small_copy(ccp, root / "ccp3", ["0001", "0002", "0003"], scale=0.5)
    for name, value in {"DATA_DIR": tmp_path / "data", "BATCH_ROOT": root, "THREADS": 1, "WORKER_NICE": 0,
                        "WARMUP": "false"}.items():
        monkeypatch.setenv(f"TAILOR_{name}", str(value))
    monkeypatch.chdir(REPO)
    return tmp_path


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_jobs_commands_and_a_worker_run(env):
    r = run("jobs", "retrain", "--epochs", 3, "--reason", "manual")
    assert r.exit_code == 0 and "job 1 (retrain) queued" in r.output, r.output
    assert "already queued" in run("jobs", "retrain").output
    assert run("jobs", "predict", "../outside").exit_code == 2
    r = run("jobs", "evaluate", "--folder", "ccp3")
    assert r.exit_code == 0 and "job 2 (evaluate) queued" in r.output, r.output
    assert run("jobs", "cancel", 1).exit_code == 0
    assert run("jobs", "cancel", 1).exit_code == 2  # already cancelled
    # No model was registered yet: the worker seeds nothing, so register the bundled one first.
    assert run("models", "register", REPO / "models" / "default", "--status", "available").exit_code == 0
    version = json.loads((REPO / "models" / "default" / "card.json").read_text())["version"]
    assert run("models", "activate", version).exit_code == 0
    r = run("worker", "--once", "--id", "cli-worker")
    assert r.exit_code == 0, r.output
    job = json.loads(run("jobs", "show", 2).output)
    assert job["status"] == "succeeded" and job["worker"] == "cli-worker", job
    assert job["result"]["version"] == version and job["result"]["images"] == 3 and 0 < job["result"]["miou"] <= 1
    listed = run("jobs", "list").output
    assert "succeeded" in listed and "cancelled" in listed
    assert "no lost jobs" in run("jobs", "recover").output
    assert run("jobs", "show", 99).exit_code == 2
