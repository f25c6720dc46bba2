"""The micro-batcher on CPU: concurrent requests are grouped (bounded size and wait, same key only).

A fake slow batch function shows the grouping rules exactly; then the real engine, with the ONNX
backend dressed up as a GPU one, shows concurrent drafts sharing one model call.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest
from tests.conftest import DEFAULT_MODEL, make_settings

from models.images import decode_image
from service.drafting.batcher import BatcherClosed, MicroBatcher
from service.drafting.engine import Engine
from service.drafting.predictor import Predictor


class Recorder:
    def __init__(self, delay: float = 0.0, fail_on=None):
        self.calls: list[list] = []
        self.delay, self.fail_on = delay, fail_on
        self.threads: set[str] = set()

    def __call__(self, payloads):
        self.calls.append(list(payloads))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in payloads:
            raise ValueError(f"bad payload {self.fail_on}")
        return [p * 10 for p in payloads]


def test_concurrent_requests_are_grouped_up_to_max_size():
    rec = Recorder(delay=0.05)
    b = MicroBatcher(rec, max_size=4, max_wait_ms=200)
    try:
        futures = [b.submit(i) for i in range(8)]  # all queued well within the wait window
        assert [f.result(5) for f in futures] == [i * 10 for i in range(8)]
    finally:
        b.close()
    assert [len(c) for c in rec.calls] == [4, 4]
    assert [p for c in rec.calls for p in c] == list(range(8))  # order kept
    assert b.batch_sizes == [4, 4]
    assert rec.threads == {"tailor-batcher"}  # the caller's thread never runs the model


def test_only_equal_keys_share_a_call():
    rec = Recorder(delay=0.02)
    b = MicroBatcher(rec, key=lambda p: p % 2, max_size=8, max_wait_ms=100)
    try:
        futures = [b.submit(i) for i in range(8)]
        assert [f.result(5) for f in futures] == [i * 10 for i in range(8)]
    finally:
        b.close()
    assert sorted(sorted(c) for c in rec.calls) == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_payloads_without_equality_are_grouped_past_other_keys():
    """Arrays of different shapes as payloads: taking a same-key item from behind another key's item
    must not compare payloads (numpy's == would raise, and kill the worker)."""
    import numpy as np

    gate = threading.Event()
    b = MicroBatcher(lambda xs: [gate.wait(5) and x.shape for x in xs], key=lambda x: x.shape[1],
                     max_size=4, max_wait_ms=50)
    try:
        first = b.submit(np.zeros((2, 1)))  # occupies the worker until the others are queued
        time.sleep(0.05)
        futures = [b.submit(np.zeros((2, w))) for w in (3, 4, 3)]
        gate.set()
        assert first.result(5) == (2, 1)
        assert [f.result(5) for f in futures] == [(2, 3), (2, 4), (2, 3)]
        assert b._worker.is_alive()
    finally:
        b.close()


def test_wait_is_bounded_when_alone():
    b = MicroBatcher(Recorder(), max_size=16, max_wait_ms=50)
    try:
        t0 = time.perf_counter()
        assert b(3, timeout=5) == 30
        assert time.perf_counter() - t0 < 1.0
    finally:
        b.close()


def test_max_size_one_serialises_without_waiting():
    rec = Recorder(delay=0.01)
    b = MicroBatcher(rec, max_size=1, max_wait_ms=1000)  # the wait only applies when grouping
    try:
        t0 = time.perf_counter()
        assert [f.result(5) for f in [b.submit(i) for i in range(4)]] == [0, 10, 20, 30]
        assert time.perf_counter() - t0 < 1.0
    finally:
        b.close()
    assert [len(c) for c in rec.calls] == [1, 1, 1, 1]


def test_a_failing_batch_fails_its_callers_and_the_worker_survives():
    b = MicroBatcher(Recorder(delay=0.05, fail_on=2), max_size=4, max_wait_ms=200)
    try:
        futures = [b.submit(i) for i in range(4)]
        for f in futures:
            with pytest.raises(ValueError, match="bad payload 2"):
                f.result(5)
        assert b(5, timeout=5) == 50
    finally:
        b.close()


def test_close_fails_pending_work_and_refuses_new():
    rec = Recorder(delay=0.3)
    b = MicroBatcher(rec, max_size=1)
    running = b.submit(1)
    time.sleep(0.05)
    pending = b.submit(2)
    cancelled = b.submit(3)
    cancelled.cancel()
    b.close()
    assert running.result(5) == 10
    with pytest.raises(BatcherClosed):
        pending.result(5)
    with pytest.raises(CancelledError):
        cancelled.result(5)
    with pytest.raises(BatcherClosed):
        b.submit(4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_size=0)
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_wait_ms=-1)


class FakeGpuBackend:
    """The ONNX backend reporting a CUDA device, slowed so concurrent requests overlap."""

    name, device = "onnx-as-gpu", "cuda:0"

    def __init__(self, inner, delay: float = 0.2):
        self.inner, self.delay, self.batches = inner, delay, []

    def run(self, batch):
        self.batches.append(batch.shape[0])
        time.sleep(self.delay)
        return self.inner.run(batch)

    def describe(self):
        return {"device": self.device, "slowed_by_s": self.delay}


def test_engine_groups_concurrent_drafts_on_a_gpu_backend(tmp_path, predictor, photos):
    from concurrent.futures import ThreadPoolExecutor

    from models.images import encode_png

    backend = FakeGpuBackend(predictor.backend)
    gpu = Predictor(DEFAULT_MODEL, backend_instance=backend, verify=False)
    engine = Engine(gpu, make_settings(tmp_path, batch_max_size=4, batch_max_wait_ms=100))
    images = [decode_image(p) for p in photos]  # CCP photos: equal input sizes
    odd = images[0][:, :300]                   # a different input size must not join their batch
    assert gpu.size_for(*odd.shape[:2]) != gpu.size_for(*images[0].shape[:2])
    files = [p.read_bytes() for p in photos] + [photos[0].read_bytes(), encode_png(odd)]

    def draft(data: bytes):
        with engine.draft(data) as d:
            return d.labels

    try:
        with ThreadPoolExecutor(len(files)) as pool:
            drafted = list(pool.map(draft, files))
    finally:
        engine.close()
    assert engine.batcher.max_size == 4
    assert sorted(backend.batches) == [1, 4], backend.batches
    for im, labels in zip(images + [images[0], odd], drafted):
        single = predictor.predict(im)
        assert labels.shape == im.shape[:2]
        assert (labels == single.labels).mean() > 0.999  # batched == one at a time


def test_engine_on_cpu_does_not_batch(tmp_path, predictor):
    engine = Engine(predictor, make_settings(tmp_path, batch_max_size=8))
    try:
        assert engine.batcher.max_size == 1
    finally:
        engine.close()


@pytest.mark.gpu
def test_torch_on_cuda_groups_concurrent_http_requests(tmp_path, photos):
    """On a real GPU: the app picks torch on CUDA and concurrent requests share model calls."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import post_image
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    settings = make_settings(tmp_path, backend="auto", batch_max_size=8, batch_max_wait_ms=50, max_in_flight=16)
    data = [p.read_bytes() for p in photos] * 4
    with TestClient(create_app(settings)) as c:
        engine = c.app.state.engine
        assert engine.predictor.backend.name == "torch" and engine.batcher.max_size == 8
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda d: post_image(c, d).status_code, data))
        assert codes == [200] * len(data)
        assert max(engine.batcher.batch_sizes) > 1, engine.batcher.batch_sizes
