"""ONNX Runtime options and int8 quantization for the default model, measured in one run on CCP photos.

1. Session options, interleaved in one process (spinning off everywhere, so one session's idle
   threads cannot slow the next): graph optimisation level (all / extended / basic), intra-op
   threads (1 vs the serving default), denormals flushed to zero, threads pinned to cores, the graph
   optimised offline and saved, loaded again, and the same weights re-exported with the decoder
   upsampling to sizes read at run time (the export before constant x2 scales).
2. Spin-waiting of the intra-op threads on and off: each setting in its own process (alternating, as
   spinning threads would otherwise weigh on whatever runs next), bare model call and full predictor.
3. int8: static QDQ quantization (onnxruntime.quantization, uint8 activations / int8 per-channel
   weights, MinMax over --calibration photos of the train split), speed interleaved with fp32, then
   mIoU and pixel accuracy at native size on the val split for both, and their label agreement.

The quantization and scoring are `tailor quantize`'s (training/quantize.py); the quantized model is
written to a temporary folder only, nothing in the model directory changes.
Run: python bench/bench_ort.py --images 20 --calibration 50
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def session(path: Path | bytes, threads: int, level: str = "all", spinning: bool = False, save: Path | None = None,
            profile_prefix: str | None = None, config: dict[str, str] | None = None):
    import onnxruntime as ort

    level_of = ort.GraphOptimizationLevel
    levels = {"all": level_of.ORT_ENABLE_ALL, "extended": level_of.ORT_ENABLE_EXTENDED,
              "basic": level_of.ORT_ENABLE_BASIC, "none": level_of.ORT_DISABLE_ALL}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[level]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if save is not None:
        opts.optimized_model_filepath = str(save)
    for key, value in (config or {}).items():
        opts.add_session_config_entry(key, value)
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    model = path if isinstance(path, bytes) else str(path)  # a file, or a serialized model
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def interleaved_ms(sessions: dict, inputs: list[np.ndarray], rounds: int) -> dict[str, list[float]]:
    """Per-call latencies: every round runs each session over all inputs, in turn."""
    for s in sessions.values():
        for x in inputs[:2]:
            s.run(None, {"image": x})
    out: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            for x in inputs:
                t0 = time.perf_counter()
                s.run(None, {"image": x})
                out[name].append((time.perf_counter() - t0) * 1000)
    return out


def export_size_driven(model_dir: Path, path: Path) -> None:
    """The model directory's weights exported as before: each decoder Resize sized from its skip tensor."""
    from safetensors.torch import load_file

    from models.card import read_card
    from training.export import export_onnx
    from training.models import build_model

    card = read_card(model_dir)
    model = build_model(card["arch"]).eval()
    model.load_state_dict(load_file(str(model_dir / "weights.safetensors")))
    export_onnx(model, path, tuple(card["training"]["config"]["crop"]), constant_upsampling=False)


def spinning_child(model: Path, images: int, rounds: int, spinning: bool) -> dict:
    """Run in a subprocess: bare model call and predictor medians with one spinning setting."""
    from models.images import decode_image
    from service.drafting.backends import default_threads
    from service.drafting.predictor import Predictor

    predictor = Predictor(model, backend="onnx")
    predictor.backend.session = session(model / "model.onnx", default_threads(), spinning=spinning)
    photos = [decode_image(p) for p in sorted((REPO.parent / "shared/data/ccp/images").glob("*.jpg"))[:images]]
    inputs = [predictor.preprocess(im)[None] for im in photos]
    for im in photos[:2]:
        predictor.predict(im)
    bare, full = [], []
    for _ in range(rounds):
        for x, im in zip(inputs, photos):
            t0 = time.perf_counter()
            predictor.backend.run(x)
            bare.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            predictor.predict(im)
            full.append((time.perf_counter() - t0) * 1000)
    return {"model call": statistics.median(bare), "predictor": statistics.median(full)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp")
    ap.add_argument("--images", type=int, default=20, help="photos for the speed measurements")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calibration", type=int, default=50, help="train-split photos to calibrate int8 on")
    ap.add_argument("--skip-int8", action="store_true")
    ap.add_argument("--spinning-child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.spinning_child:
        print(json.dumps(spinning_child(args.model, args.images, args.rounds, args.spinning_child == "on")))
        return

    from models.images import decode_image
    from service.drafting.backends import default_threads
    from service.drafting.predictor import Predictor

    threads = default_threads()
    predictor = Predictor(args.model, backend="onnx")
    from training.dataset import scan_dataset

    folder = scan_dataset(args.data)
    train_samples, val_samples = folder.split(predictor.card["training"]["config"]["val_percent"])
    train = [s.image for s in train_samples]
    photos = [decode_image(p) for p in sorted((args.data / "images").glob("*.jpg"))[: args.images]]
    inputs = [predictor.preprocess(im)[None] for im in photos]
    fp32 = args.model / "model.onnx"
    report = [f"### ONNX Runtime options and int8: model {predictor.version}, {len(photos)} CCP photos x "
              f"{args.rounds} rounds, {threads} thread(s) by default, {os.cpu_count()} CPU core(s), load average "
              f"{os.getloadavg()[0]:.1f}\n"]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        session(fp32, threads, "all", save=tmp / "offline_all.onnx")
        session(fp32, threads, "extended", save=tmp / "offline_extended.onnx")
        export_size_driven(args.model, tmp / "size_driven.onnx")
        variants = {
            f"fp32, ORT_ENABLE_ALL, {threads} threads (served)": session(fp32, threads, "all"),
            f"fp32, ORT_ENABLE_EXTENDED, {threads} threads": session(fp32, threads, "extended"),
            f"fp32, ORT_ENABLE_BASIC, {threads} threads": session(fp32, threads, "basic"),
            "fp32, ORT_ENABLE_ALL, 1 thread": session(fp32, 1, "all"),
            f"fp32, ALL, {threads} threads, denormals flushed to zero":
                session(fp32, threads, config={"session.set_denormal_as_zero": "1"}),
            f"fp32, ALL, {threads} threads, each intra-op thread pinned to a core":
                session(fp32, threads, config={"session.intra_op_thread_affinities":
                                               ";".join(str(i + 2) for i in range(threads - 1))}),
            f"fp32, decoder Resize sized at run time (earlier export), ALL, {threads} threads":
                session(tmp / "size_driven.onnx", threads, "all"),
            "fp32, optimised offline (ALL), loaded with BASIC": session(tmp / "offline_all.onnx", threads, "basic"),
            "fp32, optimised offline (EXTENDED), loaded with ALL":
                session(tmp / "offline_extended.onnx", threads, "all"),
        }
        if not args.skip_int8:
            from training.quantize import quantize_onnx

            calibration = train[:: max(1, len(train) // args.calibration)][: args.calibration]
            t0 = time.perf_counter()
            quantize_onnx(fp32, tmp / "int8.onnx", calibration, predictor.card["input"])
            quant_s = time.perf_counter() - t0
            variants[f"int8 QDQ (u8 activations, s8 per-channel weights), ALL, {threads} threads"] = \
                session(tmp / "int8.onnx", threads, "all")
        times = interleaved_ms(variants, inputs, args.rounds)
        base = statistics.median(next(iter(times.values())))
        report += ["| ONNX Runtime session | median ms | p95 ms | vs served |", "|---|---:|---:|---:|"]
        for name, ms in times.items():
            med = statistics.median(ms)
            p95 = sorted(ms)[int(0.95 * (len(ms) - 1))]
            report.append(f"| {name} | {med:.1f} | {p95:.1f} | {base / med:.2f}x |")

        spin: dict[str, list[dict]] = {"on": [], "off": []}
        for _ in range(2):
            for setting in ("on", "off"):
                out = subprocess.run([sys.executable, __file__, "--model", str(args.model), "--images",
                                      str(args.images), "--rounds", str(args.rounds), "--spinning-child", setting],
                                     capture_output=True, text=True, check=True)
                spin[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
        report += ["", "| intra-op spin-waiting (own process each, alternating) | model call ms | predictor ms |",
                   "|---|---:|---:|"]
        for setting, runs in spin.items():
            report.append(f"| {setting} | {statistics.median(r['model call'] for r in runs):.1f} | "
                          f"{statistics.median(r['predictor'] for r in runs):.1f} |")

        if not args.skip_int8:
            sizes = {name: os.path.getsize(p) / 1e6 for name, p in (("fp32", fp32), ("int8", tmp / "int8.onnx"))}
            from training.quantize import compare_on_val

            quality = compare_on_val({"fp32": fp32, "int8": tmp / "int8.onnx"}, predictor.card, folder,
                                     val_samples)
            report += ["", f"int8: quantized in {quant_s:.1f} s from {len(calibration)} train-split photos; "
                           f"ONNX file {sizes['int8']:.2f} MB vs {sizes['fp32']:.2f} MB", "",
                       "| model | val mIoU | pixel accuracy | label agreement with fp32 | val photos |",
                       "|---|---:|---:|---:|---:|"]
            for name, q in quality.items():
                report.append(f"| {name} | {q['miou']:.4f} | {q['pixel_accuracy']:.4f} | {q['agreement_with_fp32']:.4f} | "
                              f"{q['images']} |")
            drop = quality["fp32"]["miou"] - quality["int8"]["miou"]
            report += ["", f"int8 mIoU drop: {drop:+.5f} (ship only if under 0.005 and clearly faster)"]
    print("\n".join(report))


if __name__ == "__main__":
    main()
