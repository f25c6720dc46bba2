"""ONNX Runtime and torch backends agree on real photos: >= 99.9% of argmax pixels, same input size.

Both share pre- and post-processing, so any disagreement comes from the exported graph or the
runtimes' arithmetic; torch is optional (the `train` extra), so this skips where it is missing.
"""
from __future__ import annotations

import pytest
from conftest import DEFAULT_MODEL

from training.images import decode_image


def test_onnx_and_torch_agree_on_ccp_photos(predictor, photos):
    pytest.importorskip("torch")
    from service.inference import Predictor

    torch_predictor = Predictor(DEFAULT_MODEL, backend="torch", threads=1, verify=False)
    assert torch_predictor.backend.name == "torch" and predictor.backend.name == "onnx"
    assert len(photos) == 3
    for path in photos:
        image = decode_image(path)
        a, b = predictor.predict(image), torch_predictor.predict(image)
        assert a.input_size == b.input_size
        agreement = (a.labels == b.labels).mean()
        assert agreement >= 0.999, f"{path.name}: only {agreement:.5f} of pixels agree"
        assert abs(a.difficulty - b.difficulty) < 1e-3


def test_torch_precision_is_checked():
    from service.inference.backends import TorchBackend

    with pytest.raises(ValueError, match="unknown precision 'int4'; use fp32, bf16, fp16"):
        TorchBackend(DEFAULT_MODEL, device="cpu", precision="int4")
    assert TorchBackend(DEFAULT_MODEL, device="cpu", precision="fp16").autocast_dtype is None  # CUDA only
