"""Two interchangeable inference backends behind `Backend.run(batch) -> logits`.

ONNX Runtime on CPU is the default and never imports torch; torch runs on CUDA when a GPU is
present (bf16 autocast, channels-last) or when forced, rebuilding the net from the card's arch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from training.card import ModelDirError, read_card


class Backend(Protocol):
    name: str
    device: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) float32 -> (N, classes, h, w) float32 logits."""


class OnnxBackend:
    name = "onnx"
    device = "cpu"

    def __init__(self, model_dir: Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # Set deliberately: all graph optimisations, and intra-op threads = the cores we were given.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        path = Path(model_dir) / "model.onnx"
        if not path.is_file():
            raise ModelDirError(f"{path}: missing")
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


class TorchBackend:
    name = "torch"

    def __init__(self, model_dir: Path, device: str | None = None, threads: int | None = None,
                 half: bool = True, channels_last: bool = True):
        import torch
        from safetensors.torch import load_file

        from training.models import build_model

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
        self.autocast_dtype = torch.bfloat16 if (half and on_cuda) else None
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                out = self.model(x)
            return out.float().cpu().numpy()


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def load_backend(model_dir: Path | str, kind: str = "auto", threads: int | None = None, **torch_options) -> Backend:
    """kind: "onnx", "torch", or "auto" (torch when CUDA is present, else ONNX Runtime)."""
    model_dir = Path(model_dir)
    if kind == "auto":
        kind = "torch" if cuda_available() else "onnx"
    if kind == "onnx":
        return OnnxBackend(model_dir, threads)
    if kind == "torch":
        return TorchBackend(model_dir, threads=threads, **torch_options)
    raise ValueError(f"unknown backend {kind!r}; use auto, onnx or torch")
