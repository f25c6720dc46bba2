"""GPU serving benchmark: torch on CUDA by precision, memory layout and batch size, then the engine's
micro-batching against one request at a time, in one run on CCP photos.

1. The model call as the server makes it (host-to-device copy, forward, logits back to the host) in fp32,
   bf16 and fp16 autocast, NCHW and channels-last, at each batch size: median ms per call, images/s,
   and each setting's argmax agreement with fp32 NCHW.
2. The engine as the server runs it: `--clients` threads calling Engine.predict (pre-processing, model,
   post-processing at full size) with micro-batching (--batch-max-size, --batch-max-wait-ms) and with
   one request per model call: images/s, median and p95 latency, mean batch size.
Run where CUDA is: python bench/bench_gpu.py --images 32. `--device cpu` runs the same code on the CPU
(slowly, and the engine never batches there): the test suite does so to keep the script working.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.timing import timed_ms  # noqa: E402
from service.drafting.backends import DEFAULT_PRECISION  # noqa: E402


def model_calls(model: Path, device: str, inputs: np.ndarray, batch_sizes: list[int], precisions: list[str],
                repeats: int) -> list[dict]:
    """Section 1: one row per (precision, layout, batch size)."""
    from service.drafting.backends import TorchBackend

    rows, reference = [], None
    for precision, channels_last in itertools.product(precisions, (False, True)):
        backend = TorchBackend(model, device=device, precision=precision, channels_last=channels_last)
        labels = backend.run(inputs[: max(batch_sizes)]).argmax(1)  # also the warm-up
        if reference is None:
            reference = labels
        agreement = float((labels == reference).mean())
        for n in batch_sizes:
            batch = inputs[:n]
            backend.run(batch)  # kernels for this shape chosen before timing
            ms = statistics.median(timed_ms(lambda: backend.run(batch), repeats))
            rows.append({"precision": precision, "layout": "channels-last" if channels_last else "NCHW",
                         "batch": n, "ms": ms, "images_s": n / ms * 1000, "agreement": agreement})
        del backend
    return rows


def engine_runs(model: Path, device: str, precision: str, images: list[np.ndarray], clients: int, rounds: int,
                max_size: int, max_wait_ms: float) -> list[dict]:
    """Section 2: concurrent Engine.predict with micro-batching and with one image per model call."""
    from service.drafting.backends import TorchBackend
    from service.drafting.engine import Engine
    from service.drafting.predictor import Predictor
    from service.settings import Settings

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size, wait in ((max_size, max_wait_ms), (1, 0.0)):
            settings = Settings(_env_file=None, data_dir=Path(scratch) / "data",
                                model_dir=model, backend="torch", batch_max_size=size, batch_max_wait_ms=wait)
            backend = TorchBackend(model, device=device, precision=precision)
            engine = Engine(Predictor(model, backend_instance=backend), settings)
            try:
                for im in images[:2]:
                    engine.predict(im)
                engine.batcher.batch_sizes = []
                latencies: list[float] = []

                def one(im):
                    t0 = time.perf_counter()
                    engine.predict(im)
                    latencies.append((time.perf_counter() - t0) * 1000)

                t0 = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    for _ in range(rounds):
                        list(pool.map(one, images))
                wall = time.perf_counter() - t0
                sizes = engine.batcher.batch_sizes or [1]
                rows.append({"batching": f"up to {engine.batcher.max_size}, wait {engine.batcher.max_wait * 1000:g} ms",
                             "images_s": len(latencies) / wall, "median_ms": statistics.median(latencies),
                             "p95_ms": sorted(latencies)[int(0.95 * (len(latencies) - 1))],
                             "mean_batch": sum(sizes) / len(sizes)})
            finally:
                engine.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp" / "images",
                    help="a folder of photos (on a GPU machine: a few CCP photos carried with the repo)")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-sizes", default="1,2,4,8,16")
    ap.add_argument("--precisions", default="fp32,bf16,fp16")
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per model-call row")
    ap.add_argument("--clients", type=int, default=16, help="concurrent callers of the engine")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the photos per engine setting")
    ap.add_argument("--batch-max-size", type=int, default=8)
    ap.add_argument("--batch-max-wait-ms", type=float, default=5.0)
    ap.add_argument("--engine-precision", default=DEFAULT_PRECISION,
                    help="precision of the engine runs (the served one)")
    args = ap.parse_args(argv)

    import torch

    from models.images import decode_image
    from service.drafting.predictor import Predictor

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run on a GPU machine, or pass --device cpu for a smoke run")
    paths = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.images]
    if not paths:
        raise SystemExit(f"no photos under {args.data}")
    images = [decode_image(p) for p in paths]
    predictor = Predictor(args.model, backend="onnx")  # pre-processing only: the model input of each photo
    inputs = [predictor.preprocess(im) for im in images]
    shape, _ = Counter(x.shape for x in inputs).most_common(1)[0]  # batches stack one input size
    same = np.stack([x for x in inputs if x.shape == shape])
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    stacked = np.concatenate([same] * -(-max(batch_sizes) // len(same)))  # repeat photos to the largest batch
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"

    calls = model_calls(args.model, args.device, stacked, batch_sizes, args.precisions.split(","), args.repeats)
    served = engine_runs(args.model, args.device, args.engine_precision, images, args.clients, args.rounds,
                         args.batch_max_size, args.batch_max_wait_ms)

    print(f"\n### GPU serving benchmark: model {predictor.version} on {device_name} (torch {torch.__version__}), "
          f"{len(images)} photos, model input {shape[1]}x{shape[2]}\n")
    if not args.device.startswith("cuda"):
        print("(not on CUDA: precision and layout are not applied and the engine does not batch; a smoke run)\n")
    print("| precision | layout | batch | ms per call | images/s | argmax agreement with fp32 NCHW |")
    print("|---|---|---:|---:|---:|---:|")
    for r in calls:
        print(f"| {r['precision']} | {r['layout']} | {r['batch']} | {r['ms']:.2f} | {r['images_s']:.1f} | "
              f"{r['agreement']:.5f} |")
    print(f"\nEngine, {args.clients} concurrent callers x {args.rounds} rounds over the photos, "
          f"{args.engine_precision} channels-last (pre-processing, model, post-processing to full size):\n")
    print("| micro-batching | images/s | median ms | p95 ms | mean batch |")
    print("|---|---:|---:|---:|---:|")
    for r in served:
        print(f"| {r['batching']} | {r['images_s']:.1f} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['mean_batch']:.2f} |")
    print(f"\n- micro-batching vs one image per call: {served[0]['images_s'] / served[1]['images_s']:.2f}x images/s")


if __name__ == "__main__":
    main()
