"""Candidate U-Nets side by side, to choose the default model by measurement.

For each encoder, decoder and input long side: parameters, model-directory size (fp32 ONNX + fp16
safetensors), ONNX Runtime fp32 and int8 ms per CCP photo, and the CPU train-step cost per image;
`--models DIR...` times trained model directories (e.g. the old and the new default) in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from models.images import decode_image  # noqa: E402
from models.preprocessing import input_size, to_input  # noqa: E402
from training.export import export_onnx  # noqa: E402
from training.models import build_initialised, count_parameters  # noqa: E402
from training.quantize import quantize_onnx  # noqa: E402

CCP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ccp"
LITE_MEAN = LITE_STD = [0.5, 0.5, 0.5]
CANDIDATES = [  # (encoder, decoder widths, long side)
    ("tu-efficientnet_lite0", [128, 64, 32, 16, 16], 384),
    ("tu-efficientnet_lite0", [128, 64, 32, 16, 16], 448),
    ("tu-efficientnet_lite0", [128, 64, 32, 16, 16], 512),
    ("tu-efficientnet_lite0", [64, 48, 32, 16, 16], 448),
    ("tu-efficientnet_lite0", [256, 128, 64, 32, 16], 448),
    ("tu-efficientnet_lite1", [128, 64, 32, 16, 16], 448),
    ("tu-efficientnet_lite2", [128, 64, 32, 16, 16], 384),
    ("tu-efficientnet_lite2", [128, 64, 32, 16, 16], 448),
]


def median_ms(fn, repeats: int) -> float:
    fn()  # first call pays for allocation and kernel selection
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def measure(encoder: str, decoder: list[int], long_side: int, photos: list[Path], args) -> dict:
    arch = {"arch": "unet", "encoder_name": encoder, "decoder_channels": decoder, "in_channels": 3, "classes": 13}
    model, _ = build_initialised(arch, "imagenet")
    model.eval()
    spec = {"long_side": long_side, "size_multiple": 32, "mean": LITE_MEAN, "std": LITE_STD}
    inputs = []
    for p in photos:
        image = decode_image(p)
        inputs.append(to_input(image, input_size(*image.shape[:2], long_side, 32), LITE_MEAN, LITE_STD)[None])
    row = {"encoder": encoder, "decoder": decoder, "long_side": long_side, "input": list(inputs[0].shape[2:]),
           "parameters": count_parameters(model)}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "int8.onnx"
        export_onnx(model, fp32, tuple(inputs[0].shape[2:]))
        quantize_onnx(fp32, int8, photos[:4], spec)
        # The shipped directory: the fp32 graph, the int8 graph and fp16 safetensors of the weights.
        row["model_dir_mb"] = (fp32.stat().st_size + int8.stat().st_size + row["parameters"] * 2) / 1e6
        for name, path in (("fp32", fp32), ("int8", int8)):
            s = session(path, args.threads)
            row[f"ort_{name}_ms"] = statistics.median(
                median_ms(lambda x=x: s.run(None, {"image": x}), args.repeats) for x in inputs)
    model.train()
    opt = torch.optim.AdamW(model.parameters())
    crop = (long_side, (long_side * 2 // 3) // 32 * 32)
    xb, yb = torch.randn(8, 3, *crop), torch.randint(0, 13, (8, *crop))

    def step():
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    row["train_ms_per_image"] = median_ms(step, 2) / 8
    return row


def measure_directory(model_dir: Path, photos: list[Path], args) -> dict:
    """The same timings for a trained model directory: its fp32 graph, and its int8 graph when it has one."""
    from models.card import read_card

    card = read_card(model_dir)
    spec = card["input"]
    inputs = []
    for p in photos:
        image = decode_image(p)
        size = input_size(*image.shape[:2], spec["long_side"], spec["size_multiple"])
        inputs.append(to_input(image, size, spec["mean"], spec["std"])[None])
    row = {"encoder": f"{model_dir} ({card['arch']['encoder_name']})", "decoder": card["arch"]["decoder_channels"],
           "long_side": spec["long_side"], "parameters": card.get("parameters") or 0,
           "model_dir_mb": sum(f.stat().st_size for f in model_dir.iterdir()) / 1e6,
           "train_ms_per_image": float("nan"), "val_miou": card["metrics"].get("miou"),
           "epochs": card.get("training", {}).get("epochs")}
    for name, graph in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
        if (model_dir / graph).is_file():
            s = session(model_dir / graph, args.threads)
            row[f"ort_{name}_ms"] = statistics.median(
                median_ms(lambda x=x: s.run(None, {"image": x}), args.repeats) for x in inputs)
        else:
            row[f"ort_{name}_ms"] = float("nan")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per photo")
    ap.add_argument("--photos", type=int, default=4, help="CCP photos timed (their median)")
    ap.add_argument("--runs", type=Path, nargs="*", default=[],
                    help="short-schedule run folders (tailor train --out) whose best val mIoU joins the table")
    ap.add_argument("--models", type=Path, nargs="*", default=[], help="trained model directories to time as well")
    ap.add_argument("--skip-candidates", action="store_true", help="time only the --models directories")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    photos = sorted((CCP / "images").glob("*.jpg"))[: args.photos]
    scored = {}
    for run in args.runs:
        state = json.loads((run / "best" / "state.json").read_text())
        key = (state["arch"]["encoder_name"], tuple(state["arch"]["decoder_channels"]), state["config"]["long_side"])
        scored[key] = (state["best"]["miou"], state["epoch"])
    rows = [measure_directory(m, photos, args) for m in args.models]
    for encoder, decoder, long_side in [] if args.skip_candidates else CANDIDATES:
        row = measure(encoder, decoder, long_side, photos, args)
        row["val_miou"], row["epochs"] = scored.get((encoder, tuple(decoder), long_side), (None, None))
        rows.append(row)
        print(f"measured {encoder} {decoder} {long_side}", flush=True)
    print(f"\n{args.threads} threads, median over {len(photos)} CCP photos, train batch 8\n")
    print("| encoder | decoder | long side | params | model dir MB | ORT fp32 ms | ORT int8 ms | train ms/img | val mIoU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        miou = f"{r['val_miou']:.3f} ({r['epochs']} ep)" if r["val_miou"] is not None else "-"
        print(f"| {r['encoder'].removeprefix('tu-')} | {','.join(map(str, r['decoder']))} | {r['long_side']} | "
              f"{r['parameters'] / 1e6:.2f}M | {r['model_dir_mb']:.1f} | {r['ort_fp32_ms']:.1f} | "
              f"{r['ort_int8_ms']:.1f} | {r['train_ms_per_image']:.0f} | {miou} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
