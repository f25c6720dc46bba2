"""The inference engine the HTTP app and batch jobs share: one predictor, one batcher, a bound on work.

It caps huge photos (downscale to max_side before the model, masks back at full size), takes photos
decoded at reduced size along with their full size, runs every model call on the batcher's worker
thread so no event loop ever blocks, and counts requests in flight.
Pre- and post-processing run in the callers' threads: only the model call is serialised.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from service.inference import Prediction, Predictor
from service.inference.batcher import MicroBatcher
from service.inference.pixel_budget import PixelBudget
from service.settings import Settings


def load_predictor(model_dir, settings: Settings) -> Predictor:
    """The predictor the settings ask for: backend, threads, and the torch backend's precision on CUDA."""
    return Predictor(model_dir, settings.backend, settings.threads, precision=settings.torch_precision)


class Saturated(RuntimeError):
    """max_in_flight requests are already being processed; the caller should retry later."""


@dataclass
class _Job:
    predictor: Predictor          # read once per request: preprocessing, model and labels all use it
    input: np.ndarray             # (3, h, w) model input
    shape: tuple[int, int]        # (H, W) the logits are upsampled to: out_shape, or under max_side
    out_shape: tuple[int, int]    # (H, W) the masks must come back at
    preprocess_ms: float


class Engine:
    def __init__(self, predictor: Predictor, settings: Settings, metrics=None):
        self.predictor, self.settings, self.metrics = predictor, settings, metrics
        # Pillow's decompression-bomb guard, at this service's own limit: it refuses to open images over
        # twice max_pixels, before the header check below them gives its clearer 413.
        Image.MAX_IMAGE_PIXELS = settings.max_pixels
        on_gpu = str(getattr(predictor.backend, "device", "cpu")).startswith("cuda")
        # On a GPU concurrent requests are grouped; on CPU one call already uses every core, so
        # batching would only add waiting.
        max_size = settings.batch_max_size if on_gpu else 1
        # Only inputs of one size from one model stack into a call (a hot swap never mixes models).
        self.batcher = MicroBatcher(self._run, key=lambda job: (id(job.predictor), job.input.shape),
                                    max_size=max_size, max_wait_ms=settings.batch_max_wait_ms if on_gpu else 0,
                                    on_batch=self._observe_batch)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.pixels = PixelBudget(max(1, int(settings.max_megapixels_in_flight * 1e6)),
                                  metrics.pixels_in_flight.set if metrics else None)

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

    def swap(self, predictor: Predictor) -> Predictor:
        """Serve `predictor` from now on; returns the old one.

        One reference assignment: each request reads the reference once, before preprocessing, and
        keeps that predictor to the end, so in-flight requests finish on the old model and later ones
        use the new (the batcher never mixes the two in one call).
        """
        with self._lock:
            old, self.predictor = self.predictor, predictor
        return old

    # -- prediction ----------------------------------------------------------------------------
    # Split in three so that on CPU the post-processing and encoding of one request overlap the
    # model call of the next: only _run is serialised (the model already uses every core), the rest
    # runs in the requesting threads.
    def _prepare(self, image: np.ndarray, shape: tuple[int, int] | None) -> _Job:
        t0 = time.perf_counter()
        predictor = self.predictor
        out_shape = tuple(shape or image.shape[:2])
        cap = self.settings.max_side
        if max(image.shape[:2]) > cap:
            image = cv2.resize(image, _capped(image.shape[:2], cap)[::-1], interpolation=cv2.INTER_AREA)
        # The size rule is applied to the photo's own size, whatever size its pixels were decoded at.
        x = predictor.preprocess(image, predictor.size_for(*_capped(out_shape, cap)))
        return _Job(predictor, x, _capped(out_shape, cap), out_shape, (time.perf_counter() - t0) * 1000)

    def _run(self, jobs: list[_Job]) -> list[tuple[np.ndarray, int, float]]:
        """On the batcher's worker: one model call for jobs that share model and input size."""
        t0 = time.perf_counter()
        batch = jobs[0].input[None] if len(jobs) == 1 else np.stack([j.input for j in jobs])
        logits = jobs[0].predictor.backend.run(batch)
        ms = (time.perf_counter() - t0) * 1000 / len(jobs)
        return [(logits[i], len(jobs), ms) for i in range(len(jobs))]

    def _finish(self, job: _Job, ran: tuple[np.ndarray, int, float], t0: float) -> Prediction:
        logits, batch, infer_ms = ran
        pred = job.predictor.postprocess(logits, job.shape, {"preprocess": job.preprocess_ms, "infer": infer_ms,
                                                             "batch": batch})
        if job.shape != job.out_shape:
            t1 = time.perf_counter()
            H, W = job.out_shape
            pred.labels = cv2.resize(pred.labels, (W, H), interpolation=cv2.INTER_NEAREST)
            pred.confidence = cv2.resize(pred.confidence, (W, H), interpolation=cv2.INTER_LINEAR)
            pred.timings_ms["postprocess"] += (time.perf_counter() - t1) * 1000
        total = (time.perf_counter() - t0) * 1000
        model = sum(pred.timings_ms.get(k, 0.0) for k in ("preprocess", "infer", "postprocess"))
        pred.timings_ms["queue"] = max(0.0, total - model)
        return pred

    def _observe_batch(self, size: int, seconds: float) -> None:
        if self.metrics:
            self.metrics.batch_size.observe(size)
            self.metrics.inference_seconds.observe(seconds)
            self.metrics.queue_depth.set(self.batcher.depth)

    def _submit(self, job: _Job):
        future = self.batcher.submit(job)
        if self.metrics:
            self.metrics.queue_depth.set(self.batcher.depth)
        return future

    def predict(self, image: np.ndarray, shape: tuple[int, int] | None = None) -> Prediction:
        """Blocking; for worker threads (request handlers' threads, batch jobs, the CLI). `shape`: the
        photo's (H, W) when `image` was decoded smaller (decode_image_for); masks come back at it."""
        t0 = time.perf_counter()
        job = self._prepare(image, shape)
        return self._finish(job, self._submit(job).result(), t0)

    async def predict_async(self, image: np.ndarray, shape: tuple[int, int] | None = None) -> Prediction:
        """For request handlers: the event loop only awaits; preprocessing, model and labels run elsewhere."""
        t0 = time.perf_counter()
        job = await asyncio.to_thread(self._prepare, image, shape)
        ran = await asyncio.wrap_future(self._submit(job))
        return await asyncio.to_thread(self._finish, job, ran, t0)

    def warm_up(self) -> float:
        """One inference on a synthetic photo-sized image, so the first real request is not slow."""
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        self.predict(rng.integers(0, 256, size=(832, 550, 3), dtype=np.uint8))
        return time.perf_counter() - t0

    def close(self) -> None:
        self.batcher.close()


def _capped(shape: tuple[int, int], cap: int) -> tuple[int, int]:
    """(H, W) scaled down so that the longer side is at most `cap`."""
    h, w = shape
    if max(h, w) <= cap:
        return (h, w)
    scale = cap / max(h, w)
    return (max(1, round(h * scale)), max(1, round(w * scale)))
