"""The inference engine the HTTP app and batch jobs share: one predictor, one batcher, a bound on work.

It caps huge photos (downscale to max_side before the model, masks back at full size), runs every
model call on the batcher's worker thread so no event loop ever blocks, and counts requests in flight.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from service.inference import Prediction, Predictor
from service.inference.batcher import MicroBatcher
from service.settings import Settings


class Saturated(RuntimeError):
    """max_in_flight requests are already being processed; the caller should retry later."""


@dataclass
class _Job:
    image: np.ndarray           # what the model sees (possibly downscaled)
    out_shape: tuple[int, int]  # (H, W) the masks must come back at


class Engine:
    def __init__(self, predictor: Predictor, settings: Settings, metrics=None):
        self.predictor, self.settings, self.metrics = predictor, settings, metrics
        on_gpu = str(getattr(predictor.backend, "device", "cpu")).startswith("cuda")
        # On a GPU concurrent requests are grouped; on CPU one call already uses every core, so
        # batching would only add waiting.
        max_size = settings.batch_max_size if on_gpu else 1
        # The key reads self.predictor at submit time, so it follows hot swaps (see swap()).
        self.batcher = MicroBatcher(self._run, key=lambda job: self.predictor.size_for(*job.image.shape[:2]),
                                    max_size=max_size, max_wait_ms=settings.batch_max_wait_ms if on_gpu else 0,
                                    on_batch=self._observe_batch)
        self._lock = threading.Lock()
        self.in_flight = 0

    # -- bounded concurrency -------------------------------------------------------------------
    def try_acquire(self) -> None:
        with self._lock:
            if self.in_flight >= self.settings.max_in_flight:
                raise Saturated(f"{self.in_flight} requests in flight (max_in_flight={self.settings.max_in_flight})")
            self.in_flight += 1
        if self.metrics:
            self.metrics.in_flight.set(self.in_flight)

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1
        if self.metrics:
            self.metrics.in_flight.set(self.in_flight)

    # -- prediction ----------------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> _Job:
        h, w = image.shape[:2]
        cap = self.settings.max_side
        if max(h, w) > cap:
            scale = cap / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            return _Job(small, (h, w))
        return _Job(image, (h, w))

    def swap(self, predictor: Predictor) -> Predictor:
        """Serve `predictor` from now on; returns the old one.

        One reference assignment: a batch already running keeps the predictor it read (it reads the
        reference once), so in-flight requests finish on the old model and later ones use the new.
        """
        with self._lock:
            old, self.predictor = self.predictor, predictor
        return old

    def _run(self, jobs: list[_Job]) -> list[Prediction]:
        predictor = self.predictor  # read once: the whole batch runs on one model
        preds = predictor.predict_many([j.image for j in jobs])
        for job, pred in zip(jobs, preds):
            if pred.labels.shape != job.out_shape:
                t0 = time.perf_counter()
                H, W = job.out_shape
                pred.labels = cv2.resize(pred.labels, (W, H), interpolation=cv2.INTER_NEAREST)
                pred.confidence = cv2.resize(pred.confidence, (W, H), interpolation=cv2.INTER_LINEAR)
                pred.timings_ms["postprocess"] += (time.perf_counter() - t0) * 1000
        return preds

    def _observe_batch(self, size: int, seconds: float) -> None:
        if self.metrics:
            self.metrics.batch_size.observe(size)
            self.metrics.inference_seconds.observe(seconds)
            self.metrics.queue_depth.set(self.batcher.depth)

    def _finish(self, pred: Prediction, t0: float) -> Prediction:
        total = (time.perf_counter() - t0) * 1000
        model = sum(pred.timings_ms.get(k, 0.0) for k in ("preprocess", "infer", "postprocess"))
        pred.timings_ms["queue"] = max(0.0, total - model)
        return pred

    def predict(self, image: np.ndarray) -> Prediction:
        """Blocking; for worker threads (batch jobs, the CLI)."""
        t0 = time.perf_counter()
        future = self.batcher.submit(self._prepare(image))
        if self.metrics:
            self.metrics.queue_depth.set(self.batcher.depth)
        return self._finish(future.result(), t0)

    async def predict_async(self, image: np.ndarray) -> Prediction:
        """For request handlers: the event loop only awaits; resizing and the model run elsewhere."""
        t0 = time.perf_counter()
        job = await asyncio.to_thread(self._prepare, image) if max(image.shape[:2]) > self.settings.max_side \
            else self._prepare(image)
        future = self.batcher.submit(job)
        if self.metrics:
            self.metrics.queue_depth.set(self.batcher.depth)
        return self._finish(await asyncio.wrap_future(future), t0)

    def warm_up(self) -> float:
        """One inference on a synthetic photo-sized image, so the first real request is not slow."""
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        self.predict(rng.integers(0, 256, size=(832, 550, 3), dtype=np.uint8))
        return time.perf_counter() - t0

    def close(self) -> None:
        self.batcher.close()
