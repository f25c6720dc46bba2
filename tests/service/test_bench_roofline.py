"""bench/roofline.py: the multiply-adds it reads off the ONNX graph and the peak rate it times.

The count is checked against the torch model itself (hooks on every Conv2d of the default model's
weights), at the two input sizes CCP photos get; the peak must be a plausible, positive rate.
"""
from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO))
from bench.roofline import conv_macs, sgemm_peak_gmacs  # noqa: E402

MODEL = REPO / "models" / "default"


@pytest.mark.parametrize("size", [(448, 288), (448, 320)])
def test_conv_macs_of_the_exported_graph_match_the_torch_model(size):
    torch = pytest.importorskip("torch")
    from service.inference.backends import TorchBackend

    model = TorchBackend(MODEL, device="cpu").model
    counted = []

    def count(module, _inputs, output):
        kh, kw = module.kernel_size
        counted.append(output.numel() * module.in_channels // module.groups * kh * kw)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, *size))
    for hook in hooks:
        hook.remove()
    assert conv_macs(MODEL / "model.onnx", *size) == sum(counted)
    assert 1e9 < sum(counted) < 5e9  # the default model is a couple of GMAC per photo


def test_conv_macs_names_a_graph_it_cannot_size(tmp_path):
    with pytest.raises(Exception, match="no_such_model.onnx"):
        conv_macs(tmp_path / "no_such_model.onnx", 448, 288)


def test_sgemm_peak_is_a_positive_rate():
    rate = sgemm_peak_gmacs(threads=1, n=256, repeats=3)
    assert 0.1 < rate < 10_000
