"""The predictor: one model directory loaded, decoded pixels in, label map and confidence out.

It owns the model card (taxonomy, normalisation, size rule) and one backend, and does the shared pre- and
post-processing (models.preprocessing) around the backend call; the engine stacks same-size inputs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.card import read_card
from models.preprocessing import entropy_difficulty, input_size, logits_to_labels, single_threaded_cv2, to_input
from models.taxonomy import Taxonomy
from service.drafting.backends import Backend, load_backend


@dataclass
class Prediction:
    labels: np.ndarray          # (H, W) uint8 class ids at the photo's size
    confidence: np.ndarray      # (H, W) float32 softmax of the winning class
    input_size: tuple[int, int]  # (h, w) the model saw
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The model that made it: with hot swaps the engine's current predictor may already be another.
    model_version: str = ""
    taxonomy: Taxonomy | None = None
    logits: np.ndarray | None = None  # (classes, h, w) the labels came from: what a refine reuses

    @property
    def difficulty(self) -> float:
        return entropy_difficulty(self.confidence)


class Predictor:
    def __init__(self, model_dir: Path | str, backend: str = "auto", threads: int | None = None,
                 verify: bool = True, backend_instance: Backend | None = None, **backend_options):
        single_threaded_cv2()
        self.model_dir = Path(model_dir)
        self.card = read_card(self.model_dir, verify=verify)
        self.taxonomy = Taxonomy.from_dict(self.card["taxonomy"], origin=str(self.model_dir / "card.json"))
        spec = self.card["input"]
        self.mean, self.std = tuple(spec["mean"]), tuple(spec["std"])
        self.long_side, self.multiple = int(spec["long_side"]), int(spec["size_multiple"])
        self.backend = backend_instance or load_backend(self.model_dir, backend, threads, **backend_options)

    @property
    def version(self) -> str:
        return self.card["version"]

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        return input_size(height, width, self.long_side, self.multiple)

    def preprocess(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """(3, h, w) model input; `size` (h, w) defaults to the size rule applied to the image's own size."""
        return to_input(image, size or self.size_for(*image.shape[:2]), self.mean, self.std)

    def predict(self, image: np.ndarray, shape: tuple[int, int] | None = None) -> Prediction:
        """Labels of one (H, W, 3) uint8 RGB photo's pixels, in this thread, straight on the backend (the
        model alone; photos go through Engine.draft). `shape`: the photo's (H, W) when `image` was decoded
        smaller (decode_image_for); masks come back at it."""
        shape = tuple(shape or image.shape[:2])
        t0 = time.perf_counter()
        x = self.preprocess(image, self.size_for(*shape))
        t1 = time.perf_counter()
        logits = self.backend.run(x[None])
        t2 = time.perf_counter()
        return self.postprocess(logits[0], shape, {"preprocess": (t1 - t0) * 1000, "infer": (t2 - t1) * 1000})

    def postprocess(self, logits: np.ndarray, shape: tuple[int, int], timings_ms: dict[str, float]) -> Prediction:
        """(classes, h, w) logits of one photo -> its Prediction at `shape` (H, W); adds the postprocess time."""
        t0 = time.perf_counter()
        labels, conf = logits_to_labels(logits, shape)
        timings_ms["postprocess"] = (time.perf_counter() - t0) * 1000
        return Prediction(labels, conf, tuple(logits.shape[1:]), timings_ms, self.version, self.taxonomy, logits)


def load_predictor(model_dir: Path | str, settings) -> Predictor:
    """The predictor the settings ask for: backend, threads, ONNX graph, test-time augmentation, and the
    torch backend's precision on CUDA."""
    return Predictor(model_dir, settings.backend, settings.threads, graph=settings.onnx_graph, tta=settings.tta,
                     precision=settings.torch_precision)
