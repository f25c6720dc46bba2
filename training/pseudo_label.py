"""Self-training data: a teacher model's drafts of unlabeled photos, with the pixels it is unsure of ignored.

The teacher averages its class probabilities over horizontal flips and several input scales (test-time
augmentation); pixels whose averaged winning probability is under a threshold become IGNORE, so the
student learns only from what the teacher is confident of. The output folder is images/ + masks/ (class ids).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from models.card import read_card, staged_model_dir
from models.images import ImageDecodeError, decode_image, read_label_map
from models.preprocessing import input_size, to_input
from training.dataset import IGNORE, IMAGE_SUFFIXES, DatasetError
from training.quantize import ort_session

MANIFEST = "pseudo.json"
SCALES = (0.75, 1.0, 1.25)   # teacher input long sides, as multiples of the model's own
MIN_CONFIDENCE = 0.7         # averaged winning probability below which a pixel is ignored


def tta_probabilities(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, spec: dict,
                      scales: tuple[float, ...] = SCALES, flip: bool = True) -> np.ndarray:
    """(C, h, w) class probabilities at the model's own input size, averaged over scales and flips.

    `run` maps a (1, 3, h, w) input to (1, C, h, w) logits; `spec` is a card's "input" section.
    """
    base = input_size(*image.shape[:2], spec["long_side"], spec["size_multiple"])
    total = None
    for scale in scales:
        size = input_size(*image.shape[:2], int(round(spec["long_side"] * scale)), spec["size_multiple"])
        x = to_input(image, size, spec["mean"], spec["std"])[None]
        views = [(x, False)] + ([(np.ascontiguousarray(x[..., ::-1]), True)] if flip else [])
        for view, flipped in views:
            logits = run(view)[0]
            if flipped:
                logits = logits[..., ::-1]
            probs = _softmax(logits)
            if probs.shape[1:] != base:
                probs = np.stack([cv2.resize(p, base[::-1], interpolation=cv2.INTER_LINEAR) for p in probs])
            total = probs if total is None else total + probs
    return total / (len(scales) * (2 if flip else 1))


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def pseudo_mask(probs: np.ndarray, out_size: tuple[int, int], min_confidence: float) -> np.ndarray:
    """Label map at the photo's size: argmax of the upsampled probabilities, IGNORE where unsure."""
    H, W = out_size
    up = np.stack([cv2.resize(p, (W, H), interpolation=cv2.INTER_LINEAR) for p in probs])
    labels = up.argmax(axis=0).astype(np.uint8)
    labels[up.max(axis=0) < min_confidence] = IGNORE
    return labels


def write_pseudo_labels(model_dir: Path, photos: Path, out_dir: Path, scales: tuple[float, ...] = SCALES,
                        flip: bool = True, min_confidence: float = MIN_CONFIDENCE, threads: int | None = None,
                        overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> dict:
    """Draft every photo in `photos` (a folder of images, or a dataset with images/) into `out_dir`.

    Written to a staging folder and renamed, so `out_dir` is complete or absent. Returns the manifest.
    """
    model_dir, photos, out_dir = Path(model_dir), Path(photos), Path(out_dir)
    card = read_card(model_dir, verify=True)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (pass overwrite to replace it)")
    if not 0 < min_confidence <= 1:
        raise ValueError(f"min_confidence must be in (0, 1], not {min_confidence}")
    source = photos / "images" if (photos / "images").is_dir() else photos
    if not source.is_dir():
        raise DatasetError(f"{photos}: not a folder of photos")
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{source}: contains no .jpg/.jpeg/.png photos")
    session = ort_session(model_dir / "model.onnx", threads)
    spec = card["input"]
    kept = total = 0
    with staged_model_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for done, path in enumerate(files, 1):
            try:
                image = decode_image(path)
            except ImageDecodeError as exc:
                raise DatasetError(str(exc)) from None
            probs = tta_probabilities(lambda x: session.run(None, {"image": x})[0], image, spec, scales, flip)
            mask = pseudo_mask(probs, image.shape[:2], min_confidence)
            kept += int((mask != IGNORE).sum())
            total += mask.size
            shutil.copyfile(path, tmp / "images" / path.name)
            Image.fromarray(mask).save(tmp / "masks" / f"{path.stem}.png")
            if progress:
                progress(done, len(files))
        manifest = {"teacher": {"name": card.get("name"), "version": card["version"]},
                    "taxonomy": card["taxonomy"]["name"], "classes": card["taxonomy"]["classes"],
                    "source": str(photos), "images": len(files), "scales": list(scales), "flip": flip,
                    "min_confidence": min_confidence, "kept_pixel_share": kept / max(total, 1),
                    "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_pseudo_pairs(folder: Path, taxonomy_name: str, num_classes: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """The (image, mask) pairs of a pseudo-label folder, checked against the taxonomy being trained."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise DatasetError(f"{folder}: not a pseudo-label folder (no {MANIFEST}); write one with tailor pseudo-label")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("taxonomy") != taxonomy_name:
        raise DatasetError(f"{manifest_path}: labels are in taxonomy {manifest.get('taxonomy')!r}, "
                           f"training uses {taxonomy_name!r}")
    pairs = []
    for path in sorted((folder / "images").iterdir()):
        mask_path = folder / "masks" / f"{path.stem}.png"
        try:
            image, mask = decode_image(path), read_label_map(mask_path)
        except ImageDecodeError as exc:
            raise DatasetError(str(exc)) from None
        if mask.shape != image.shape[:2] or int(mask[mask != IGNORE].max(initial=0)) >= num_classes:
            raise DatasetError(f"{mask_path}: does not fit {path.name} or holds ids outside the taxonomy")
        pairs.append((image, mask))
    return pairs, manifest
