"""The CPU benchmarks' own arithmetic: bench/roofline.py, profile_ort.py and bench_decoder_layers.py.

Multiply-adds are checked against the torch model itself (hooks on every Conv2d), the profile must count
kernel time only and find convolutions first, and the decoder's two formulations must agree.
"""
from __future__ import annotations

import sys

import pytest

from tests.conftest import DEFAULT_MODEL as MODEL, REPO

sys.path.insert(0, str(REPO))
from bench import profile_ort  # noqa: E402
from bench.roofline import conv_macs, sgemm_peak_gmacs  # noqa: E402


@pytest.mark.parametrize("size", [(448, 288), (448, 320)])
def test_conv_macs_of_the_exported_graph_match_the_torch_model(size):
    torch = pytest.importorskip("torch")
    from service.drafting.backends import TorchBackend

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


def test_conv_macs_reads_weights_behind_a_dequantize_node(tmp_path):
    """In an int8 (QDQ) graph a Conv's weight is a DequantizeLinear output, not an initializer."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((8, 2, 3, 3), dtype=np.int8), "w_q")
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "w_scale")
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"]),
         helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], group=2)], "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight, scale])
    path = tmp_path / "qdq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert conv_macs(path, 10, 6) == 8 * 10 * 6 * 2 * 3 * 3  # out channels x pixels x (in / groups) x kernel


def test_conv_macs_names_a_graph_it_cannot_size(tmp_path):
    with pytest.raises(Exception, match="no_such_model.onnx"):
        conv_macs(tmp_path / "no_such_model.onnx", 448, 288)


def test_sgemm_peak_is_a_positive_rate():
    rate = sgemm_peak_gmacs(threads=1, n=256, repeats=3)
    assert 0.1 < rate < 10_000


def test_profile_shares_of_a_real_photo(ccp, capsys):
    profile_ort.main(["--data", str(ccp / "images"), "--images", "1", "--nodes", "3"])
    out = capsys.readouterr().out
    ops = [line.split("|")[1:3] for line in out.split("| operator | share |")[1].split("The 3 slowest")[0]
           .splitlines() if line.startswith("| ") and "---" not in line]
    shares = {op.strip(): float(share.strip().rstrip("%")) for op, share in ops}
    assert next(iter(shares)) == "Conv" and shares["Conv"] > 50, shares  # sorted; convolutions dominate
    assert sum(shares.values()) == pytest.approx(100, abs=1)  # every operator's share of kernel time
    nodes = out.split("| node | operator | share |")[1].splitlines()[2:5]
    assert len(nodes) == 3 and all(line.startswith("| ") for line in nodes), out


def test_profile_counts_kernel_time_only():
    trace = [{"cat": "Session", "name": "model_run", "ts": 0, "dur": 900},
             {"cat": "Node", "name": "conv_a_fence_before", "ts": 1, "dur": 5, "args": {"op_name": "Conv"}},
             {"cat": "Node", "name": "conv_a_kernel_time", "ts": 2, "dur": 300, "args": {"op_name": "Conv"}},
             {"cat": "Node", "name": "conv_b_kernel_time", "ts": 3, "dur": 100, "args": {"op_name": "Conv"}},
             {"cat": "Node", "name": "up_kernel_time", "ts": 4, "dur": 50, "args": {"op_name": "Upsample"}},
             {"cat": "Node", "name": "conv_a_kernel_time", "ts": 5, "dur": 200, "args": {"op_name": "Conv"}}]
    by_type, by_node = profile_ort.kernel_times(trace)
    assert by_type == {"Conv": 600, "Upsample": 50}
    assert by_node[("conv_a", "Conv")] == 500 and by_node[("conv_b", "Conv")] == 100


def test_decoder_blocks_written_as_transposed_convolutions_are_exact(capsys):
    from bench import bench_decoder_layers

    bench_decoder_layers.main(["--repeats", "1", "--rounds", "1", "--images", "0"])
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "x" in line
            and not line.startswith("| block")]
    assert len(rows) == 5  # one per decoder block of the default model
    assert all(float(row[-2]) < 1e-5 for row in rows), rows  # the same outputs, up to float rounding
