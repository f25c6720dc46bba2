"""The engine keeps what a refine needs, and refines find it: by the photo or its content hash, with no second
model call, bounded by the settings, and refused clearly once expired, evicted or made by another model.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from tests.conftest import CCP, DEFAULT_MODEL, SlowBackend, make_settings

from service.drafting.engine import Engine, content_hash
from service.drafting.errors import DraftNotKept, DraftOfOtherModel
from service.drafting.predictor import Predictor
from service.drafting.refine import EditError
from service.drafting.refined import kept_draft, refined_prediction

PHOTOS = [CCP / "images" / name for name in ("0002.jpg", "0005.jpg", "0007.jpg")]


@pytest.fixture()
def engine(tmp_path, predictor):
    backend = SlowBackend(predictor.backend, 0.0)
    model = Predictor(DEFAULT_MODEL, backend_instance=backend, verify=False)
    engine = Engine(model, make_settings(tmp_path, refine_cache_entries=2))
    engine.calls = backend
    yield engine
    engine.close()


def test_a_kept_draft_is_refined_without_the_model_and_matches_the_engines_draft(engine):
    data = PHOTOS[0].read_bytes()
    with engine.draft(data, "dress.jpg", keep=True) as draft:
        labels, confidence = draft.labels.copy(), draft.confidence.copy()
        assert draft.content_hash == content_hash(data)
        assert not np.shares_memory(draft.scores.logits, draft.prediction.logits)
    calls = engine.calls.calls
    with kept_draft(engine, data, name="dress.jpg") as kept:
        assert kept.model_calls == 0 and kept.content_hash == content_hash(data)
        same = refined_prediction(kept, [])
        np.testing.assert_array_equal(same.prediction.labels, labels)
        np.testing.assert_allclose(same.prediction.confidence, confidence, atol=1e-6)
        clicked = refined_prediction(kept, [{"x": 255, "y": 564, "class": "skirt"}])
    with kept_draft(engine, key=content_hash(data)) as by_hash:
        again = refined_prediction(by_hash, [{"x": 255, "y": 564, "class": "skirt"}])
    assert engine.calls.calls == calls
    pred = clicked.prediction
    set_here = pred.labels != labels
    assert pred.labels[564, 255] == pred.taxonomy.names.index("skirt") and clicked.changed_pixels == set_here.sum()
    assert (pred.confidence[set_here] == 1.0).all() and pred.difficulty < same.prediction.difficulty
    np.testing.assert_array_equal(again.prediction.labels, pred.labels)


def test_a_photo_with_nothing_kept_is_drafted_once_and_kept(engine):
    data = PHOTOS[1].read_bytes()
    with kept_draft(engine, data) as first:
        pass
    with kept_draft(engine, data) as second:
        pass
    assert (first.model_calls, second.model_calls, engine.calls.calls) == (1, 0, 1)


def test_kept_drafts_are_bounded_and_a_gone_or_outdated_one_is_refused(engine):
    keys = []
    for photo in PHOTOS:  # three photos, two kept: the least recently used goes
        with engine.draft(photo.read_bytes(), photo.name, keep=True) as draft:
            keys.append(draft.content_hash)
    with pytest.raises(DraftNotKept, match=f"no draft of photo {keys[0]} is kept"):
        with kept_draft(engine, key=keys[0]):
            pass
    newer = copy.copy(engine.predictor)
    newer.card = {**newer.card, "version": "a-newer-model"}
    engine.swap(newer)
    with pytest.raises(DraftOfOtherModel, match="a-newer-model serves now"):
        with kept_draft(engine, key=keys[2]):
            pass


def test_nothing_is_kept_when_the_cache_is_off(tmp_path, predictor):
    engine = Engine(predictor, make_settings(tmp_path, refine_cache_entries=0))
    try:
        data = PHOTOS[0].read_bytes()
        with engine.draft(data, keep=True):
            pass
        with pytest.raises(DraftNotKept):
            with kept_draft(engine, key=content_hash(data)):
                pass
    finally:
        engine.close()


def test_a_refused_edit_is_the_domain_error(engine):
    with kept_draft(engine, PHOTOS[0].read_bytes()) as kept:
        with pytest.raises(EditError, match="outside the photo"):
            refined_prediction(kept, [{"x": 550, "y": 0, "class": "skirt"}])
