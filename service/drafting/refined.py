"""A refined draft for callers: a photo's kept scores (the model runs only when none are kept), edits
applied, and the result as a Prediction, so /v1/refine, `tailor refine` and Label Studio answer it as a draft.

Kept scores are found by the photo's bytes or by their content hash alone (DraftNotKept when gone).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.preprocessing import logits_to_labels
from models.taxonomy import Taxonomy
from service.drafting.batch import Photo, classes_of, write_draft, write_summary
from service.drafting.engine import Engine, content_hash
from service.drafting.errors import DraftNotKept, DraftOfOtherModel
from service.drafting.predictor import Prediction
from service.drafting.refine import GrowthSettings, Refinement, parse_edits
from service.drafting.scores import PhotoScores


@dataclass
class Kept:
    """One photo's scores as kept for refines, and the model that made them."""

    scores: PhotoScores
    content_hash: str
    model_version: str
    taxonomy: Taxonomy
    model_calls: int                                    # 1 when the photo had to be drafted for this refine
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Refined:
    prediction: Prediction      # labels after the edits; confidence 1 where an edit set the class
    draft_labels: np.ndarray    # the model's own labels the edits started from
    edits: int
    changed_pixels: int


@contextmanager
def kept_draft(engine: Engine, photo: bytes | Path | None = None, key: str | None = None,
               name: str | None = None) -> Iterator[Kept]:
    """The kept scores of `photo`, or of the photo whose content hash is `key`; a photo with none kept
    by the serving model is drafted (and kept). Blocking: call it from a worker thread. The photo's
    pixels count against the engine's pixel budget until the block ends."""
    t0 = time.perf_counter()
    if photo is None:
        if key is None:
            raise ValueError("give the photo or its content hash")
        kept = _by_hash(engine, key)
        with engine.pixels.hold(kept.scores.size[0] * kept.scores.size[1]):
            kept.timings_ms["lookup"] = (time.perf_counter() - t0) * 1000
            yield kept
        return
    name = name or (str(photo) if isinstance(photo, Path) else "image")
    data, header = engine.read(photo, name)
    predictor = engine.predictor  # read once: a hot swap in between must not mix two models
    key = content_hash(data)
    scores = engine.kept.get((key, predictor.version))
    if scores is not None:
        with engine.pixels.hold(header.pixels):
            yield Kept(scores, key, predictor.version, predictor.taxonomy, 0,
                       {"lookup": (time.perf_counter() - t0) * 1000})
        return
    with engine.draft(photo, name, keep=True, read=(data, header)) as draft:
        yield Kept(draft.scores, draft.content_hash, draft.model_version, draft.taxonomy, 1,
                   dict(draft.prediction.timings_ms))


def _by_hash(engine: Engine, key: str) -> Kept:
    predictor = engine.predictor
    scores = engine.kept.get((key, predictor.version))
    if scores is not None:
        return Kept(scores, key, predictor.version, predictor.taxonomy, 0)
    others = sorted({version for kept_hash, version in engine.kept.keys() if kept_hash == key})
    if others:
        raise DraftOfOtherModel(f"photo {key} was drafted by model {', '.join(others)}, and model "
                                f"{predictor.version} serves now: send the photo itself")
    settings = engine.settings
    raise DraftNotKept(f"no draft of photo {key} is kept here (a draft is kept {settings.refine_cache_ttl_s:.0f} s "
                       f"after its last use, and only the {settings.refine_cache_entries} most recent): send the "
                       "photo itself")


def refined_prediction(kept: Kept, edits: Iterable, settings: GrowthSettings = GrowthSettings()) -> Refined:
    """The model's draft of the kept photo with `edits` applied in order (EditError, before any applies,
    for a malformed one). Labels are at the photo's size, as refine.py places them."""
    t0 = time.perf_counter()
    scores = kept.scores
    parsed = parse_edits(edits, scores)
    labels, confidence = logits_to_labels(scores.logits, scores.size)
    refinement = Refinement(scores, labels, settings)
    for edit in parsed:
        refinement.apply(edit)
    # Where an annotator's edit set the class, the draft is as sure as the annotator.
    confidence = np.where(refinement.set_by > 0, np.float32(1.0), confidence)
    timings = {**kept.timings_ms, "refine": (time.perf_counter() - t0) * 1000}
    prediction = Prediction(refinement.labels, confidence, tuple(scores.logits.shape[1:]), timings,
                            kept.model_version, kept.taxonomy, scores.logits)
    return Refined(prediction, labels, len(parsed), int(np.count_nonzero(refinement.labels != labels)))


def refine_file(engine: Engine, photo: Path, edits: Iterable, out: Path, left_right: bool = False) -> Refined:
    """`tailor refine`: the photo's draft with `edits` applied, written as `tailor predict` writes a draft
    (out/masks/<stem>.png, out/coco.json, out/summary.csv); nothing is written when an edit is refused."""
    with kept_draft(engine, photo, name=str(photo)) as kept:
        refined = refined_prediction(kept, edits)
        (out / "masks").mkdir(parents=True, exist_ok=True)
        draft = write_draft(out, 0, Photo(photo, str(photo), photo.stem), refined.prediction, left_right)
    write_summary(out, [draft], classes_of(kept.taxonomy, left_right), kept.model_version)
    return refined
