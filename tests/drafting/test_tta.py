"""Test-time flip augmentation (TAILOR_TTA=flip): a mirrored photo gets the mirrored draft, exactly, and the
averaged logits stay close to the plain ones on CCP photos; the setting is checked and reported.
"""
import numpy as np
import pytest
from tests.conftest import DEFAULT_MODEL

from models.images import decode_image
from service.drafting.backends import FlipAveraged, load_backend
from service.drafting.predictor import Predictor


@pytest.fixture(scope="module")
def flipped_predictor():
    return Predictor(DEFAULT_MODEL, backend="onnx", threads=2, tta="flip")


def test_a_mirrored_photo_gets_the_mirrored_draft(flipped_predictor, ccp):
    photo = decode_image(ccp / "images" / "0002.jpg")
    photo = photo[:, : photo.shape[1] // 32 * 32]  # sides the size rule keeps as they are under a mirror
    x = flipped_predictor.preprocess(photo)[None]
    logits = flipped_predictor.backend.run(x)
    mirrored = flipped_predictor.backend.run(np.ascontiguousarray(x[..., ::-1]))
    np.testing.assert_allclose(mirrored, logits[..., ::-1], atol=1e-5)
    plain = Predictor(DEFAULT_MODEL, backend="onnx", threads=2)
    assert not np.allclose(plain.backend.run(x), logits, atol=1e-3)  # the plain model is not symmetric


def test_flip_drafts_agree_with_plain_ones_on_most_pixels(flipped_predictor, ccp):
    plain = Predictor(DEFAULT_MODEL, backend="onnx", threads=2)
    for pid in ("0003", "0100"):
        photo = decode_image(ccp / "images" / f"{pid}.jpg")
        a, b = plain.predict(photo), flipped_predictor.predict(photo)
        assert b.labels.shape == photo.shape[:2]
        assert 0.9 < (a.labels == b.labels).mean() < 1.0


def test_tta_is_checked_and_described():
    with pytest.raises(ValueError, match="none or flip"):
        load_backend(DEFAULT_MODEL, "onnx", 1, tta="rotate")
    backend = load_backend(DEFAULT_MODEL, "onnx", 1, tta="flip")
    assert isinstance(backend, FlipAveraged) and backend.describe()["tta"] == "flip"
    assert backend.name == "onnx" and backend.device == "cpu"
