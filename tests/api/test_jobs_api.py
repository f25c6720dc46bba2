"""The /v1/jobs API and the retrain triggers: queue, list, progress, cancel, tokens, a restart of the service,
every N approvals, the Label Studio "Start training" button; and the server following `current` in the
database (a promotion by the worker process) without failing requests in flight, and without undoing a rollback.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from tests.conftest import CCP, make_settings, post_image, wait_for
from fastapi.testclient import TestClient

from models.images import decode_image, encode_png
from service.api.app import create_app
from service.store.models_registry import current_version, register_model, set_current

TOKEN = "jobs-token-0123456789"


def _app(settings, predictor):
    return TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False)


def test_queue_list_cancel_and_survive_a_restart(tmp_path, predictor, batch_root):
    settings = make_settings(tmp_path, warmup=False, batch_root=batch_root, api_tokens=[TOKEN], model_poll_s=0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _app(settings, predictor) as c:
        assert c.post("/v1/jobs", json={"kind": "retrain"}).status_code == 401
        r = c.post("/v1/jobs", json={"kind": "retrain", "params": {"epochs": 8}, "reason": "try"}, headers=auth)
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["status"] == "queued" and job["params"] == {"epochs": 8} and job["requested_by"] == "api"
        again = c.post("/v1/jobs", json={"kind": "retrain"}, headers=auth)
        assert again.status_code == 200 and again.json()["id"] == job["id"] and again.json()["created"] is False
        for bad in ({"kind": "nap"}, {"kind": "retrain", "params": {"epochz": 1}},
                    {"kind": "retrain", "params": {"epochs": "many"}}, {"kind": "batch_predict", "params": {}},
                    {"kind": "batch_predict", "params": {"folder": "../etc"}}):
            assert c.post("/v1/jobs", json=bad, headers=auth).status_code == 422, bad
        pred = c.post("/v1/jobs", json={"kind": "batch_predict", "params": {"folder": "shoot"}}, headers=auth)
        assert pred.status_code == 201
        listed = c.get("/v1/jobs").json()
        assert listed["total"] == 2 and [j["id"] for j in listed["jobs"]] == [pred.json()["id"], job["id"]]
        assert c.get("/v1/jobs", params={"kind": "retrain"}).json()["total"] == 1
    # A new app on the same database (a restart): the queued jobs are still there.
    with _app(settings, predictor) as c:
        got = c.get(f"/v1/jobs/{job['id']}").json()
        assert got["status"] == "queued" and got["reason"] == "try"
        r = c.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert c.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).status_code == 409
        assert c.get("/v1/jobs/999").status_code == 404
        assert c.get("/v1/promotions").json() == {"promotions": []}


def _upload(client, photo: bytes) -> int:
    h, w = decode_image(photo).shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 2:, :] = 7  # pants
    files = {"image": ("p.jpg", photo, "image/jpeg"), "mask": ("m.png", encode_png(mask), "image/png")}
    r = client.post("/v1/corrections", files=files)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _retrains(client) -> list[dict]:
    return client.get("/v1/jobs", params={"kind": "retrain"}).json()["jobs"]


def test_every_n_approvals_queue_one_retrain(tmp_path, predictor, photos):
    settings = make_settings(tmp_path, warmup=False, retrain_every=2, model_poll_s=0)
    with _app(settings, predictor) as c:
        ids = [_upload(c, p.read_bytes()) for p in photos]
        review = lambda i, status="approved": c.post(f"/v1/corrections/{i}/review",
                                                    json={"status": status, "reviewer": "rev"})
        assert review(ids[0]).status_code == 200 and _retrains(c) == []
        assert review(ids[1], "rejected").status_code == 200 and _retrains(c) == []  # rejections do not count
        review(ids[1])
        jobs = _retrains(c)
        assert len(jobs) == 1 and jobs[0]["requested_by"] == "trigger" and "2 corrections" in jobs[0]["reason"]
        review(ids[2])
        assert len(_retrains(c)) == 1  # one is already queued: no duplicate


def test_label_studio_start_training_queues_a_retrain(tmp_path, predictor, photos):
    settings = make_settings(tmp_path, warmup=False, model_poll_s=0, retrain_min_approved=1, eval_percent=0.01,
                             retrain_base_data=CCP)
    with _app(settings, predictor) as c:
        start = {"action": "START_TRAINING", "project": {"id": 3}}
        r = c.post("/v1/labelstudio/webhook", json=start, follow_redirects=False)
        assert r.status_code == 307 and r.json()["status"] == "refused" and _retrains(c) == []  # nothing approved
        c.post(f"/v1/corrections/{_upload(c, photos[0].read_bytes())}/review",
               json={"status": "approved", "reviewer": "rev"}).raise_for_status()
        r = c.post("/v1/labelstudio/webhook", json=start)
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        jobs = _retrains(c)
        assert len(jobs) == 1 and jobs[0]["requested_by"] == "labelstudio" and "project 3" in jobs[0]["reason"]
        assert r.json()["retrain"]["job_id"] == r.json()["job"] == jobs[0]["id"]
        c.post("/v1/labelstudio/webhook", json=start)
        assert len(_retrains(c)) == 1  # pressed twice: the queued job is joined


def test_server_follows_current_without_failing_requests(tmp_path, predictor, photo_bytes, tiny_model):
    settings = make_settings(tmp_path, warmup=False, model_poll_s=0.2)
    with _app(settings, predictor) as c:
        app = c.app
        store = app.state.store
        with store.session() as s:
            tiny = register_model(s, settings.model_store_dir, tiny_model, status="candidate").version
        failures, stop = [], threading.Event()

        def hammer():
            while not stop.is_set():
                r = post_image(c, photo_bytes)
                if r.status_code != 200:
                    failures.append(r.status_code)

        t = threading.Thread(target=hammer)
        t.start()
        try:
            time.sleep(0.3)
            with store.session() as s:  # what the worker process does after a promotion
                set_current(s, tiny, actor="job 1", reason="promotion gate")
            assert wait_for(lambda: app.state.engine.predictor.version == tiny, timeout=60)
            time.sleep(0.3)
        finally:
            stop.set()
            t.join(60)
        assert failures == []
        assert c.get("/v1/models/current").json()["version"] == tiny
        # A rollback through the API sets `current` too, so the poller keeps it rather than undoing it.
        r = c.post(f"/v1/models/{predictor.version}/activate", json={"reason": "rollback"})
        assert r.status_code == 200 and r.json()["version"] == predictor.version
        time.sleep(1.0)  # five polls
        assert app.state.engine.predictor.version == predictor.version
        with store.session() as s:
            assert current_version(s) == predictor.version


@pytest.mark.parametrize("value", ["shoes,bag", '["shoes"]'])
def test_guarded_classes_setting(monkeypatch, tmp_path, value):
    monkeypatch.setenv("TAILOR_PROMOTION_GUARDED_CLASSES", value)
    assert make_settings(tmp_path).promotion_guarded_classes[0] == "shoes"
    with pytest.raises(ValueError, match="fixed by the model"):
        make_settings(tmp_path, retrain_config={"encoder": "resnet18"})
