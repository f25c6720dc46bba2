"""Candidate U-Nets side by side, to choose the default model by measurement.

For each encoder/decoder: parameters, model-directory size (ONNX + safetensors, fp32), CPU latency
of one CCP-sized photo in ONNX Runtime and torch eager, and the train step cost per image.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from training.export import export_onnx  # noqa: E402
from training.models import build_model, count_parameters  # noqa: E402

CANDIDATES = [
    ("tu-regnetx_002", [64, 48, 32, 16, 16]),
    ("tu-regnetx_002", [128, 64, 32, 16, 16]),
    ("tu-regnety_002", [64, 48, 32, 16, 16]),
    ("tu-mobilenetv3_large_100", [64, 48, 32, 16, 16]),
    ("tu-efficientnet_lite0", [64, 48, 32, 16, 16]),
    ("resnet18", [128, 64, 32, 16, 16]),
]


def median_ms(fn, repeats: int) -> float:
    fn()  # first call pays for allocation and kernel selection
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--size", type=int, nargs=2, default=[384, 256], help="input h w (a 550x830 photo at long side 384)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = args.size
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    rows = []
    for encoder, decoder in CANDIDATES:
        arch = {"arch": "unet", "encoder_name": encoder, "decoder_channels": decoder, "in_channels": 3, "classes": 13}
        model = build_model(arch).eval()
        params = count_parameters(model)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            export_onnx(model, path, (h, w))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            ort_ms = median_ms(lambda: sess.run(None, {"image": x}), args.repeats)
        tx = torch.from_numpy(x)
        with torch.inference_mode():
            torch_ms = median_ms(lambda: model(tx), args.repeats)
        model.train()
        opt = torch.optim.AdamW(model.parameters())
        xb, yb = torch.randn(8, 3, h, w), torch.randint(0, 13, (8, h, w))

        def step():
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        train_ms = median_ms(step, 2) / 8
        # Directory size of a trained model: fp32 weights twice (model.onnx and weights.safetensors). The ONNX
        # file of untrained weights is not a fair proxy: exported fresh BatchNorm folds into fewer bytes.
        rows.append((encoder, decoder, params, params * 8 / 1e6, ort_ms, torch_ms, train_ms))
        print(f"measured {encoder} {decoder}", flush=True)
    print(f"\n{args.threads} threads, input {h}x{w}, batch 1 inference, train batch 8\n")
    print("| encoder | decoder | params | model dir MB | ORT CPU ms | torch CPU ms | train ms/img | fits 25 MB |")
    print("|---|---|---|---|---|---|---|---|")
    for enc, dec, p, mb, o, t, tr in rows:
        print(f"| {enc} | {','.join(map(str, dec))} | {p / 1e6:.2f}M | {mb:.1f} | {o:.0f} | {t:.0f} | {tr:.0f} | "
              f"{'yes' if mb <= 25 else 'no'} |")


if __name__ == "__main__":
    main()
