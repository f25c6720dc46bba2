"""The engine: the one seam from a photo to its draft, shared by the HTTP app, jobs, the CLI and the tools.

Engine.draft reads a photo's header once, refuses what the limits forbid before decoding a pixel, holds
the photo's pixels against the pixel budget, decodes it (a large JPEG only as large as the model needs),
caps huge photos at max_side and runs the model call on the batcher's thread. Pre- and post-processing
run in the caller's thread, so on CPU only the model call is serialised.
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from models.images import (ImageDecodeError, ImageHeader, ImageTooLarge, decode_image, decode_image_for, encode_png,
                           read_header, reason)
from models.taxonomy import Taxonomy
from service.drafting.batcher import MicroBatcher
from service.drafting.errors import PhotoRejected, PhotoTooLarge, Saturated
from service.drafting.pixel_budget import PixelBudget
from service.drafting.predictor import Prediction, Predictor
from service.drafting.scores import PhotoScores, RefineCache
from service.settings import MiB, Settings

_BUFFER_REPR = re.compile(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>")  # Pillow's name for bytes: noise


@dataclass
class Draft:
    """One photo's draft: the model's labels and confidence at the photo's displayed size."""

    name: str
    image: np.ndarray             # the pixels as decoded: the whole photo, or smaller for the model's sake
    prediction: Prediction
    content_hash: str = ""        # sha256 of the photo's bytes, when the draft is kept for refines

    @cached_property
    def scores(self) -> PhotoScores:
        """What refines and region alternatives read: the logits (a copy: the model's output may be one
        photo of a batch), the photo's size and class names, and its pixels when decoded whole."""
        pred = self.prediction
        image = self.image if self.image.shape[:2] == pred.labels.shape else None  # colour at full size only
        return PhotoScores(pred.logits.copy(), pred.labels.shape, pred.taxonomy.names, image)

    @property
    def labels(self) -> np.ndarray:
        return self.prediction.labels

    @property
    def confidence(self) -> np.ndarray:
        return self.prediction.confidence

    @property
    def taxonomy(self) -> Taxonomy:
        return self.prediction.taxonomy

    @property
    def model_version(self) -> str:
        return self.prediction.model_version

    @property
    def difficulty(self) -> float:
        return self.prediction.difficulty


@dataclass
class _Job:
    predictor: Predictor          # read once per photo: preprocessing, model and labels all use it
    input: np.ndarray             # (3, h, w) model input
    shape: tuple[int, int]        # (H, W) the logits are upsampled to: out_shape, or under max_side
    out_shape: tuple[int, int]    # (H, W) the masks must come back at
    preprocess_ms: float


class Engine:
    def __init__(self, predictor: Predictor, settings: Settings, metrics=None):
        self.predictor, self.settings, self.metrics = predictor, settings, metrics
        # Pillow's decompression-bomb guard at this service's own limit: it refuses to open an image of
        # over twice max_pixels at all; read() refuses the ones in between from their header.
        Image.MAX_IMAGE_PIXELS = settings.max_pixels
        on_gpu = str(getattr(predictor.backend, "device", "cpu")).startswith("cuda")
        # On a GPU concurrent drafts are grouped; on CPU one call already uses every core, so
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
        # Drafts kept for refines, per (content hash, model version): a refine never runs the model again.
        self.kept = RefineCache(settings.refine_cache_entries, int(settings.refine_cache_mb * MiB),
                                settings.refine_cache_ttl_s)

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

        One reference assignment: each draft reads the reference once, before preprocessing, and keeps
        that predictor to the end, so drafts in flight finish on the old model and later ones use the new
        (the batcher never mixes the two in one call).
        """
        with self._lock:
            old, self.predictor = self.predictor, predictor
        return old

    # -- a photo in ------------------------------------------------------------------------------
    def read(self, photo: bytes | Path, name: str) -> tuple[bytes, ImageHeader]:
        """The photo's bytes and header, or PhotoRejected: empty, unreadable, or over a limit (bytes,
        pixels), found before any pixel is decoded, so a decompression bomb costs nothing."""
        settings = self.settings
        if isinstance(photo, Path):
            try:
                photo = photo.read_bytes()
            except OSError as exc:
                raise PhotoRejected(f"{name}: cannot read ({exc.strerror or exc})") from None
        if not photo:
            raise PhotoRejected(f"{name}: empty file (0 bytes)")
        if len(photo) > settings.max_upload_bytes:
            raise PhotoTooLarge(f"{name} is {len(photo)} bytes, above the limit of {settings.max_upload_bytes} "
                                "bytes (max_upload_bytes)")
        try:
            header = read_header(photo, name)
        except ImageTooLarge as exc:
            raise PhotoTooLarge(f"{_BUFFER_REPR.sub('', str(exc))} (max_pixels={settings.max_pixels})") from None
        except ImageDecodeError as exc:
            raise PhotoRejected(_BUFFER_REPR.sub("", str(exc))) from None
        if header.pixels > settings.max_pixels:
            raise PhotoTooLarge(f"{name}: image is {header.width}x{header.height} = {header.pixels} pixels, above "
                                f"the limit of {settings.max_pixels} (max_pixels)")
        return photo, header

    def decode(self, data: bytes, name: str, header: ImageHeader, full_pixels: bool = False,
               predictor: Predictor | None = None) -> tuple[np.ndarray, tuple[int, int]]:
        """(upright RGB pixels, the photo's displayed (H, W)): a large JPEG decoded only as large as the
        model's size rule needs, unless `full_pixels`; PhotoRejected when it does not decode or is too small."""
        size_for = (predictor or self.predictor).size_for
        # max_pixels was checked on the header by read(); the decoders are not asked again.
        try:
            if full_pixels:
                image = decode_image(data, name, None, header)
                shape = image.shape[:2]
            else:
                image, shape = decode_image_for(data, size_for, name, None, header)
        except ImageDecodeError as exc:
            raise PhotoRejected(_BUFFER_REPR.sub("", str(exc))) from None
        except Exception as exc:  # a corrupt file can trip odd errors deep in a codec; still the photo's fault
            raise PhotoRejected(f"{name}: not a readable image ({type(exc).__name__}: {reason(exc)})") from None
        return image, self._big_enough(name, shape)

    def shown_size(self, photo: bytes | Path, name: str) -> tuple[int, int]:
        """The photo's displayed (H, W) from its header alone, under the same limits as draft()."""
        return self._big_enough(name, self.read(photo, name)[1].shown)

    def _big_enough(self, name: str, shape: tuple[int, int]) -> tuple[int, int]:
        h, w = shape
        if min(h, w) < self.settings.min_side:
            raise PhotoRejected(f"{name}: image is {w}x{h}, smaller than the minimum side of "
                                f"{self.settings.min_side} px (min_side)")
        return int(h), int(w)

    @contextmanager
    def draft(self, photo: bytes | Path, name: str | None = None, *, full_pixels: bool = False,
              predictor: Predictor | None = None, keep: bool = False,
              read: tuple[bytes, ImageHeader] | None = None) -> Iterator[Draft]:
        """Draft one photo (its bytes, or a file). Blocking: call it from a worker thread.

        The photo's pixels count against the pixel budget until the block ends, so whatever the caller
        makes of the draft there (encodings, files) is inside the bound too. `full_pixels` keeps the whole
        decoded photo (the overlay draws on it); `predictor` drafts with another model than the serving
        one (a warm-up before a swap); `keep` keeps its scores for refines (`kept`, by content hash);
        `read` is what read() already gave for the photo.
        """
        name = name or (str(photo) if isinstance(photo, Path) else "image")
        predictor = predictor or self.predictor
        data, header = read or self.read(photo, name)
        t0 = time.perf_counter()
        with self.pixels.hold(header.pixels):
            t1 = time.perf_counter()
            image, shape = self.decode(data, name, header, full_pixels, predictor)
            t2 = time.perf_counter()
            pred = self.predict(image, shape, predictor)
            pred.timings_ms = {"decode": (t2 - t1) * 1000, **pred.timings_ms}
            pred.timings_ms["queue"] += (t1 - t0) * 1000  # waiting for the pixel budget is queueing too
            draft = Draft(name, image, pred)
            if keep:
                draft.content_hash = content_hash(data)
                self.kept.put((draft.content_hash, pred.model_version), draft.scores)
            yield draft

    # -- the model -------------------------------------------------------------------------------
    # Split in three so that on CPU the post-processing and encoding of one draft overlap the model call
    # of the next: only _run is serialised (the model already uses every core), the rest runs in the
    # callers' threads.
    def predict(self, image: np.ndarray, shape: tuple[int, int] | None = None,
                predictor: Predictor | None = None) -> Prediction:
        """Labels of decoded pixels, at `shape` (the photo's (H, W) when `image` was decoded smaller):
        the step of draft() after decoding, for callers that hold pixels already (benchmarks)."""
        t0 = time.perf_counter()
        job = self._prepare(image, shape, predictor or self.predictor)
        future = self.batcher.submit(job)
        if self.metrics:
            self.metrics.queue_depth.set(self.batcher.depth)
        return self._finish(job, future.result(), t0)

    def _prepare(self, image: np.ndarray, shape: tuple[int, int] | None, predictor: Predictor) -> _Job:
        t0 = time.perf_counter()
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
        logits, _batch, infer_ms = ran  # the batch size goes to the metrics (on_batch), not the timings
        pred = job.predictor.postprocess(logits, job.shape, {"preprocess": job.preprocess_ms, "infer": infer_ms})
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

    def warm_up(self, predictor: Predictor | None = None) -> float:
        """Draft one synthetic photo-sized image, so the first real photo is not slow; returns seconds."""
        t0 = time.perf_counter()
        noise = np.random.default_rng(0).integers(0, 256, size=(832, 550, 3), dtype=np.uint8)
        with self.draft(encode_png(noise), "warm-up photo", predictor=predictor):
            pass
        return time.perf_counter() - t0

    def close(self) -> None:
        self.batcher.close()


def content_hash(data: bytes) -> str:
    """The key a photo's draft is kept under (with the model version): sha256 of its bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def _capped(shape: tuple[int, int], cap: int) -> tuple[int, int]:
    """(H, W) scaled down so that the longer side is at most `cap`."""
    h, w = shape
    if max(h, w) <= cap:
        return (h, w)
    scale = cap / max(h, w)
    return (max(1, round(h * scale)), max(1, round(w * scale)))
