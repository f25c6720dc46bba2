"""How far from this machine's arithmetic limit a model call runs: multiply-adds per call and the peak rate.

`conv_macs` counts the multiply-accumulates of every Conv in an ONNX graph at a given input size (the rest
of the graph is a few percent of the arithmetic); `sgemm_peak_gmacs` times a large float32 matrix product
in ONNX Runtime's own kernels with the given threads, the rate no float32 convolution here can beat.
"""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np


@lru_cache(maxsize=16)
def conv_macs(model_path: Path, height: int, width: int) -> int:
    """Multiply-accumulates of all Conv nodes of the graph for one (1, C, height, width) input."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(model_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, None, height, width)):
        if value is not None:
            dim.ClearField("dim_param")
            dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.output]}
    # A weight is an initializer, or in a quantized (QDQ) graph the output of a DequantizeLinear
    weights = {**shapes, **{w.name: list(w.dims) for w in model.graph.initializer}}
    total = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        out = shapes.get(node.output[0])
        if not out or 0 in out:
            raise ValueError(f"{model_path}: no static output shape for {node.name} at {height}x{width}")
        _, per_group_in, kh, kw = weights[node.input[1]]  # (out channels, in channels / groups, kh, kw)
        total += out[1] * out[2] * out[3] * per_group_in * kh * kw
    return total


def quantized(model_path: Path) -> bool:
    """Whether the graph computes in int8 (QDQ nodes): then the float32 peak is no limit of its."""
    import onnx

    return any(n.op_type in ("DequantizeLinear", "QLinearConv") for n in onnx.load(str(model_path)).graph.node)


def sgemm_peak_gmacs(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Best rate (GMAC/s) of an n x n x n float32 MatMul in ONNX Runtime, in a session set up as served."""
    from onnx import TensorProto, helper

    from bench.bench_ort import session

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
                              [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    matmul = session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                     threads)
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal((n, n), dtype=np.float32) for k in "ab"}
    matmul.run(None, feed)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul.run(None, feed)
        best = min(best, time.perf_counter() - t0)
    return n ** 3 / best / 1e9
