"""Saturation: beyond max_in_flight, requests get 503 + Retry-After at once instead of queueing.

The backend is the real model slowed by a sleep, so requests overlap for certain; meanwhile the event
loop must stay free (liveness answers quickly) and every slot must be released afterwards.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import DEFAULT_MODEL, SlowBackend, make_settings, post_image
from fastapi.testclient import TestClient

from service.app import create_app
from service.inference import Predictor

DELAY_S = 1.5


@pytest.fixture(scope="module")
def slow_client(tmp_path_factory, predictor):
    slow = Predictor(DEFAULT_MODEL, backend_instance=SlowBackend(predictor.backend, DELAY_S), verify=False)
    settings = make_settings(tmp_path_factory.mktemp("slow"), max_in_flight=2, retry_after_s=3, warmup=False)
    with TestClient(create_app(settings, predictor=slow), raise_server_exceptions=False) as c:
        yield c


def test_saturated_service_answers_503_with_retry_after_at_once(slow_client, photo_bytes):
    def one(_):
        t0 = time.perf_counter()
        r = post_image(slow_client, photo_bytes)
        return r, time.perf_counter() - t0

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(one, i) for i in range(6)]
        time.sleep(0.5)  # requests are in: two are running, the rest were refused
        t0 = time.perf_counter()
        live = slow_client.get("/v1/health/live")
        live_s = time.perf_counter() - t0
        results = [f.result() for f in futures]

    codes = sorted(r.status_code for r, _ in results)
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) == 2, codes
    rejected = [(r, s) for r, s in results if r.status_code == 503]
    for r, seconds in rejected:
        assert r.headers["retry-after"] == "3"
        assert "busy" in r.json()["detail"]
        assert seconds < DELAY_S, "a refusal must not wait for the model"
    # The model call sleeps in a worker thread: the event loop kept answering.
    assert live.status_code == 200 and live_s < DELAY_S / 2

    metrics = slow_client.get("/metrics").text
    assert f"tailor_rejected_total {float(len(rejected))}" in metrics
    assert "tailor_requests_in_flight 0.0" in metrics


def test_slots_are_released_after_success_and_failure(slow_client, photo_bytes):
    for _ in range(3):  # more than max_in_flight: a leaked slot would show up as a 503
        assert post_image(slow_client, b"not an image").status_code == 400
    assert post_image(slow_client, photo_bytes, path="/v1/predict/mask.png").status_code == 200
    assert slow_client.get("/v1/health/ready").json()["in_flight"] == 0
