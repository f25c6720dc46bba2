"""Liveness, readiness and /metrics: ready only after the lifespan loaded and warmed the model.

An app whose lifespan has not run (no model) must say so with 503s, never pretend to be ready;
after traffic, /metrics must show request counts and latency by route template, and inference stats.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO, make_settings, post_image
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.api.app import create_app
from service.drafting.backends import nvidia_driver_present


def test_live_and_ready_once_started(client, predictor):
    assert client.get("/v1/health/live").json() == {"status": "alive"}
    r = client.get("/v1/health/ready")
    assert r.status_code == 200
    assert r.json()["ready"] is True and r.json()["model_version"] == predictor.version


def test_not_ready_before_the_model_is_loaded(tmp_path):
    app = create_app(make_settings(tmp_path))
    c = TestClient(app)  # no `with`: the lifespan (model load) has not run
    assert c.get("/v1/health/live").status_code == 200
    r = c.get("/v1/health/ready")
    assert r.status_code == 503 and r.json()["ready"] is False and r.headers["retry-after"]
    r = c.post("/v1/predict", files={"image": ("a.jpg", b"x")})
    assert r.status_code == 503 and "not loaded" in r.json()["detail"]
    assert c.get("/v1/models/current").status_code == 503


def test_lifespan_loads_warms_up_and_shuts_down(tmp_path, photo_bytes):
    app = create_app(make_settings(tmp_path))  # loads models/default itself, as `tailor serve` does
    with TestClient(app) as c:
        assert c.get("/v1/health/ready").status_code == 200
        assert 'tailor_ready 1.0' in c.get("/metrics").text
        # The warm-up ran one inference before any request.
        assert re.search(r"tailor_batch_size_count 1\.0", c.get("/metrics").text)
        assert post_image(c, photo_bytes).status_code == 200
    assert app.state.ready is False and app.state.engine is None


def test_bad_settings_fail_at_startup_not_on_a_request(tmp_path):
    with pytest.raises(ValidationError, match="not a model directory"):
        make_settings(tmp_path, model_dir=tmp_path)


def test_metrics_count_requests_by_route_and_observe_inference(client, photo_bytes):
    assert post_image(client, photo_bytes).status_code == 200
    assert post_image(client, b"nope").status_code == 400
    text = client.get("/metrics").text
    assert re.search(r'tailor_http_requests_total\{method="POST",route="/v1/predict",status="200"\} \d', text)
    assert re.search(r'tailor_http_requests_total\{method="POST",route="/v1/predict",status="400"\} \d', text)
    assert re.search(r'tailor_http_request_duration_seconds_count\{method="POST",route="/v1/predict"\} \d', text)
    assert re.search(r"tailor_inference_seconds_count [1-9]", text)
    assert re.search(r"tailor_batch_size_bucket\{le=\"1\.0\"\} [1-9]", text)
    assert "tailor_inference_queue_depth" in text and "tailor_requests_in_flight" in text
    # Route templates, not raw paths: ids must not explode the label set.
    client.get("/v1/batches/0123456789abcdef0123456789abcdef")
    assert 'route="/v1/batches/{job_id}"' in client.get("/metrics").text


@pytest.mark.skipif(nvidia_driver_present(), reason="an NVIDIA driver is here: auto may rightly load torch")
def test_serving_on_cpu_never_imports_torch(tmp_path, photo_bytes):
    """With the default backend ("auto") and no GPU driver, the server starts and predicts on ONNX Runtime
    without importing torch (over a second of startup and ~480 MB), even where torch is installed."""
    script = f"""
import sys
from fastapi.testclient import TestClient
sys.path.insert(0, {str(Path(__file__).parent)!r})
from tests.conftest import make_settings
from service.api.app import create_app
with TestClient(create_app(make_settings(__import__("pathlib").Path({str(tmp_path)!r}), backend="auto"))) as c:
    r = c.post("/v1/predict", files={{"image": ("p.jpg", open({str(tmp_path / "p.jpg")!r}, "rb").read())}})
    print(r.status_code, c.get("/v1/models/current").json()["backend"], "torch" in sys.modules)
"""
    (tmp_path / "p.jpg").write_bytes(photo_bytes)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=REPO, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-3:] == ["200", "onnx", "False"], out.stdout
