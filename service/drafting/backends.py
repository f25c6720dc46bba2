"""Two interchangeable inference backends behind `Backend.run(batch) -> logits`.

ONNX Runtime on CPU is the default and never imports torch; torch runs on CUDA when a GPU is
present (fp16 autocast, channels-last) or when forced, rebuilding the net from the card's arch.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from models.card import FP32_GRAPH, INT8_GRAPH, ModelDirError, read_card


class Backend(Protocol):
    name: str
    device: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) float32 -> (N, classes, h, w) float32 logits."""

    def describe(self) -> dict:
        """How it runs (session options, or device, precision and layout), for /v1/models/current and logs."""


def default_threads() -> int:
    """Inference threads when none are configured: one per physical core this process may use.

    The cores of the CPU affinity mask (what taskset or a container's cpuset allows), SMT siblings
    counted once (a second hyperthread adds little to convolutions and competes for the same unit),
    and no more than a cgroup CPU quota (cpu.max) allows, rounded up.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    count = len(cores) or len(cpus)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


class OnnxBackend:
    name = "onnx"
    device = "cpu"

    def __init__(self, model_dir: Path, threads: int | None = None, graph: str = "auto"):
        """graph: "int8" (model.int8.onnx, written by `tailor quantize` only when it scores like fp32 on
        val), "fp32" (model.onnx), or "auto": the int8 graph when the directory has one."""
        # Every option set deliberately rather than left to ONNX Runtime's defaults:
        # - all graph optimisations, including the NCHWc layout transform (ORT_ENABLE_ALL runs this model
        #   1.4x faster than ORT_ENABLE_BASIC or _EXTENDED on AVX-512, bench/bench_ort.py);
        # - intra-op threads = the physical cores we may use (or the `threads` setting); one graph
        #   runs at a time (sequential execution, one inter-op thread): this model is a chain of ops,
        #   and concurrent requests are serialised by the engine's batcher anyway;
        # - worker threads do not spin-wait between ops (ONNX Runtime's default is to spin): a lone call
        #   is about 7% slower, but under concurrent requests the spinning threads steal the cores that
        #   decode, post-process and encode the other requests; at 4 clients the HTTP service did 18.5
        #   instead of 15 images/s without spinning, at the same latency for 1 client (bench_serving.py).
        self.options = {"graph_optimization": "ORT_ENABLE_ALL", "intra_op_threads": threads or default_threads(),
                        "inter_op_threads": 1, "execution_mode": "ORT_SEQUENTIAL",
                        "allow_spinning": ALLOW_SPINNING}
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = self.options["intra_op_threads"]
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if ALLOW_SPINNING else "0")
        if graph not in ("auto", "fp32", "int8"):
            raise ValueError(f"unknown ONNX graph {graph!r}; use auto, fp32 or int8")
        int8 = Path(model_dir) / INT8_GRAPH
        if graph == "auto":
            graph = "int8" if int8.is_file() else "fp32"
        path = int8 if graph == "int8" else Path(model_dir) / FP32_GRAPH
        if not path.is_file():
            raise ModelDirError(f"{path}: missing" + (" (quantize the model first: tailor quantize)"
                                                      if graph == "int8" else ""))
        self.graph = graph
        self.options["graph"] = path.name
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def describe(self) -> dict:
        """The session options in use, for benchmarks and logs."""
        return dict(self.options)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


ALLOW_SPINNING = False  # see OnnxBackend.__init__

# torch's autocast dtype of each precision name (None: plain float32).
AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
# On CUDA: fp16, not bf16. Both run at the same tensor-core rate on current GPUs, but bf16 keeps 8 bits
# of mantissa to fp16's 11, and the backends must label >= 99.9% of pixels alike: with torch's CPU
# autocast standing in (tests/drafting/test_backend_parity.py), bf16 agreed with the float32 ONNX graph
# on 99.83%-100% of pixels per CCP photo (5 of 40 photos under 99.9%), fp16 on 99.98%-100%.
DEFAULT_PRECISION = "fp16"


class TorchBackend:
    name = "torch"

    def __init__(self, model_dir: Path, device: str | None = None, threads: int | None = None,
                 precision: str = DEFAULT_PRECISION, channels_last: bool = True):
        """precision: "fp16" or "bf16" autocast, or "fp32"; it and channels_last apply on CUDA only."""
        import torch  # only here: a CPU server on ONNX Runtime never loads torch
        from safetensors.torch import load_file

        from training.models import build_model

        if precision not in AUTOCAST:
            raise ValueError(f"unknown precision {precision!r}; use {', '.join(AUTOCAST)}")
        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        card = read_card(model_dir)
        model = build_model(card["arch"])
        model.load_state_dict(load_file(str(Path(model_dir) / "weights.safetensors")))
        model.eval().to(self.device)
        on_cuda = self.device.startswith("cuda")
        self.channels_last = channels_last and on_cuda
        dtype = AUTOCAST[precision]
        self.autocast_dtype = getattr(torch, dtype) if on_cuda and dtype else None
        self.precision = precision if on_cuda else "fp32"
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    def describe(self) -> dict:
        """Where and how the net runs: device, arithmetic and memory layout."""
        return {"device": str(self.device), "precision": self.precision,
                "layout": "channels-last" if self.channels_last else "NCHW"}

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                out = self.model(x)
            return out.float().cpu().numpy()


def nvidia_driver_present() -> bool:
    """Whether this machine could have a CUDA GPU at all, asked without importing torch.

    Importing torch only to learn there is no GPU costs a CPU server over a second of startup and
    about 480 MB of memory; with no NVIDIA driver (Linux: its /proc entry or device nodes, WSL: /dev/dxg)
    there is nothing to find. Elsewhere (Windows) torch is asked.
    """
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg"))
    return True


def cuda_available() -> bool:
    if not nvidia_driver_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


class FlipAveraged:
    """Test-time augmentation: the logits of each input averaged with those of its mirror image.

    One backend call on the batch and its mirrors together; twice the arithmetic for a steadier draft
    (left/right-symmetric by construction). Chosen with the `tta` setting ("flip")."""

    def __init__(self, inner: Backend):
        self.inner, self.name, self.device = inner, inner.name, inner.device

    def describe(self) -> dict:
        return {**self.inner.describe(), "tta": "flip"}

    def run(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        logits = self.inner.run(np.concatenate([batch, batch[..., ::-1]]))
        return (logits[:n] + logits[n:, ..., ::-1]) * np.float32(0.5)


def load_backend(model_dir: Path | str, kind: str = "auto", threads: int | None = None, graph: str = "auto",
                 tta: str = "none", **torch_options) -> Backend:
    """kind: "onnx", "torch", or "auto" (torch when CUDA is present, else ONNX Runtime); graph: which ONNX
    graph (see OnnxBackend); tta: "none" or "flip" (FlipAveraged); torch_options (precision, channels_last,
    device) go to TorchBackend and are ignored by ONNX Runtime."""
    model_dir = Path(model_dir)
    if tta not in ("none", "flip"):
        raise ValueError(f"unknown test-time augmentation {tta!r}; use none or flip")
    if kind == "auto":
        kind = "torch" if cuda_available() else "onnx"
    if kind == "onnx":
        backend: Backend = OnnxBackend(model_dir, threads, graph)
    elif kind == "torch":
        backend = TorchBackend(model_dir, threads=threads, **torch_options)
    else:
        raise ValueError(f"unknown backend {kind!r}; use auto, onnx or torch")
    return FlipAveraged(backend) if tta == "flip" else backend
