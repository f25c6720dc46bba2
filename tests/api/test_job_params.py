"""Job params are checked in full when a job is queued: versions, bounds, and a retrain's resolved config.

A job refused here would otherwise be accepted (201) and fail in the worker, or run for ever; the same
resolution refuses a TAILOR_RETRAIN_CONFIG that cannot train the current model when the service starts.
"""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_settings

from service.api.app import create_app
from service.jobs.retrain_config import RetrainConfigError


@pytest.mark.parametrize("kind,params,words", [
    ("evaluate", {"version": "../../x"}, "version"),
    ("evaluate", {"version": "no-such-version"}, "no model version"),
    ("batch_predict", {"folder": "shoot", "version": "../x"}, "version"),
    ("retrain", {"epochs": 1_000_000_000}, "between 1 and"),
    ("retrain", {"epochs": 0}, "between 1 and"),
    ("retrain", {"lr": 50.0}, "lr"),
    # The default model averages its last 6 epochs' weights: 2 epochs cannot train it.
    ("retrain", {"epochs": 2}, "average_epochs"),
])
def test_bad_params_are_refused_at_submit(client, kind, params, words):
    before = client.get("/v1/jobs").json()["total"]
    r = client.post("/v1/jobs", json={"kind": kind, "params": params})
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert client.get("/v1/jobs").json()["total"] == before


def test_a_known_version_is_accepted(client):
    version = client.get("/v1/models/current").json()["version"]
    r = client.post("/v1/jobs", json={"kind": "evaluate", "params": {"version": version}})
    assert r.status_code == 201, r.text
    assert client.post(f"/v1/jobs/{r.json()['id']}/cancel").status_code == 200


def test_a_retrain_config_that_cannot_train_stops_startup(tmp_path, predictor):
    settings = make_settings(tmp_path, retrain_config={"epochs": 2}, warmup=False)
    with pytest.raises(RetrainConfigError, match=r"average_epochs must be between 0 and epochs \(2\), not 6"):
        with TestClient(create_app(settings, predictor=predictor)):
            pass
