"""Saturation: beyond max_in_flight, requests get 503 + Retry-After at once instead of queueing.

The backend is the real model slowed by a sleep, so requests overlap for certain; meanwhile the event
loop must stay free (liveness answers quickly) and every slot must be released afterwards.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.conftest import DEFAULT_MODEL, SlowBackend, make_settings, post_image
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.drafting.predictor import Predictor

DELAY_S = 1.5


@pytest.fixture(scope="module")
def slow_client(tmp_path_factory, predictor):
    slow = Predictor(DEFAULT_MODEL, backend_instance=SlowBackend(predictor.backend, DELAY_S), verify=False)
    settings = make_settings(tmp_path_factory.mktemp("slow"), max_in_flight=2, retry_after_s=3, warmup=False)
    with TestClient(create_app(settings, predictor=slow), raise_server_exceptions=False) as c:
        yield c


class GatedBackend:
    """The real backend, held at a gate: requests stay in flight until the test opens it.

    A gate rather than a sleep makes the test independent of how fast (or starved) the CPU is.
    """

    def __init__(self, inner):
        self.inner, self.name, self.device = inner, inner.name, inner.device
        self.gate = threading.Event()

    def run(self, batch):
        assert self.gate.wait(30), "test never opened the gate"
        return self.inner.run(batch)

    def describe(self):
        return {**self.inner.describe(), "gated": True}


def wait_until(predicate, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)


def test_saturated_service_answers_503_with_retry_after_at_once(tmp_path, predictor, photo_bytes):
    gated = GatedBackend(predictor.backend)
    held = Predictor(DEFAULT_MODEL, backend_instance=gated, verify=False)
    settings = make_settings(tmp_path, max_in_flight=2, retry_after_s=3, warmup=False)
    with TestClient(create_app(settings, predictor=held), raise_server_exceptions=False) as client, \
            ThreadPoolExecutor(2) as pool:
        admitted = [pool.submit(post_image, client, photo_bytes) for _ in range(2)]
        wait_until(lambda: client.get("/v1/health/ready").json()["in_flight"] == 2)
        # Both slots are taken and held: every further request must be refused at once, not queued.
        refused = [post_image(client, photo_bytes) for _ in range(4)]
        t0 = time.perf_counter()
        live = client.get("/v1/health/live")  # the event loop is free while inference waits in threads
        live_s = time.perf_counter() - t0
        metrics_while_full = client.get("/metrics").text
        gated.gate.set()
        codes = [f.result(timeout=60).status_code for f in admitted]

    assert codes == [200, 200]
    for r in refused:
        assert r.status_code == 503
        assert r.headers["retry-after"] == "3"
        assert "busy" in r.json()["detail"]
    assert live.status_code == 200 and live_s < 5
    assert "tailor_rejected_total 4.0" in metrics_while_full
    assert "tailor_requests_in_flight 2.0" in metrics_while_full


def test_slots_are_released_after_success_and_failure(slow_client, photo_bytes):
    for _ in range(3):  # more than max_in_flight: a leaked slot would show up as a 503
        assert post_image(slow_client, b"not an image").status_code == 400
    assert post_image(slow_client, photo_bytes, path="/v1/predict/mask.png").status_code == 200
    assert slow_client.get("/v1/health/ready").json()["in_flight"] == 0
