"""Large photos: decoding a JPEG only as large as the model needs, against decoding it whole.

CCP val photos enlarged 1x to 7x and saved as JPEGs (7x is about 3900 x 5800, a phone photo), each
predicted both ways in interleaved rounds: decode + preprocess time, the whole prediction, and how
the labels compare (agreement with each other, val mIoU against the enlarged annotations). Then the
serving memory: 4 clients at once sending enlarged photos to `tailor serve`, with the default pixel
budget and with none, peak RSS and time per round of 4 answers.
Run: python bench/bench_decode.py --images 20
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="val photos per scale")
    ap.add_argument("--scales", default="1,2,4,7", help="enlargements, comma list")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp")
    ap.add_argument("--serve-scales", default="4,9", help="enlargements sent to the server, comma list ('' skips)")
    args = ap.parse_args()

    import cv2
    from PIL import Image

    from models.images import decode_image, decode_image_for
    from service.drafting.backends import default_threads
    from service.drafting.predictor import Predictor
    from training.dataset import load_samples, scan_dataset
    from training.metrics import confusion, scores

    predictor = Predictor(args.model, backend="onnx", threads=default_threads())
    taxonomy, names = predictor.taxonomy, predictor.taxonomy.names
    folder = scan_dataset(args.data)
    val = folder.split(float(predictor.card.get("training", {}).get("config", {}).get("val_percent", 10.0)))[1]
    samples = list(load_samples(folder, val[: args.images], taxonomy))

    def whole(data: bytes):
        t0 = time.perf_counter()
        image = decode_image(data)
        x = predictor.preprocess(image)
        return x, image.shape[:2], time.perf_counter() - t0

    def reduced(data: bytes):
        t0 = time.perf_counter()
        image, shape = decode_image_for(data, predictor.size_for)
        x = predictor.preprocess(image, predictor.size_for(*shape))
        return x, shape, time.perf_counter() - t0

    print(f"\n### Decoding large photos: {len(samples)} CCP val photos per scale, {args.rounds} interleaved rounds, "
          f"model {predictor.version}, {default_threads()} thread(s)\n")
    print("| photo size (median) | path | decode + preprocess ms | whole prediction ms | val mIoU | label agreement |")
    print("|---|---|---:|---:|---:|---:|")
    for k in [int(s) for s in args.scales.split(",")]:
        jpegs, truths = [], []
        for _, image, mask in samples:
            big = Image.fromarray(image).resize((image.shape[1] * k, image.shape[0] * k), Image.BICUBIC)
            buf = io.BytesIO()
            big.save(buf, format="JPEG", quality=92)
            jpegs.append(buf.getvalue())
            truths.append(cv2.resize(mask, (big.width, big.height), interpolation=cv2.INTER_NEAREST))
        times = {name: ([], []) for name in ("whole", "reduced")}
        conf = {name: np.zeros((len(names), len(names)), dtype=np.int64) for name in times}
        agree = total = 0
        for r in range(args.rounds):
            for data, truth in zip(jpegs, truths):
                labels = {}
                for name, prepare in (("whole", whole), ("reduced", reduced)):
                    t0 = time.perf_counter()
                    x, shape, prep_s = prepare(data)
                    labels[name] = predictor.postprocess(predictor.backend.run(x[None])[0], shape, {}).labels
                    times[name][0].append(prep_s * 1000)
                    times[name][1].append((time.perf_counter() - t0) * 1000)
                    if r == 0:
                        conf[name] += confusion(truth, labels[name], len(names))
                if r == 0:
                    agree += int((labels["whole"] == labels["reduced"]).sum())
                    total += labels["whole"].size
        size = f"{truths[0].shape[1]} x {truths[0].shape[0]}"
        for name in times:
            miou = scores(conf[name], names)["miou"]
            share = "" if name == "whole" else f"{agree / total:.4f}"
            print(f"| {size} ({k}x) | {name} | {statistics.median(times[name][0]):.1f} | "
                  f"{statistics.median(times[name][1]):.1f} | {miou:.4f} | {share} |")
    if args.serve_scales:
        serving_memory([image for _, image, _ in samples[:4]], [int(k) for k in args.serve_scales.split(",")],
                       args.model)


def serving_memory(images: list, scales: list[int], model: Path, clients: int = 4, rounds: int = 3) -> None:
    """Peak RSS of `tailor serve` while `clients` send enlarged photos at once, with and without the budget."""
    import json
    import tempfile
    import threading

    import httpx
    from PIL import Image

    from bench.harness import free_port, rss_mb, start_server, wait_ready
    from service.settings import Settings

    default = Settings.model_fields["max_megapixels_in_flight"].default
    print(f"\n{clients} clients at once, all five formats, {rounds} rounds; peak RSS of the serving process:\n")
    print("| photos | megapixels in flight | peak RSS MiB | seconds per round of answers (median) |")
    print("|---|---|---:|---:|")
    for k in scales:
        jpegs = []
        for image in images[:clients]:
            buf = io.BytesIO()
            Image.fromarray(image).resize((image.shape[1] * k, image.shape[0] * k), Image.BICUBIC).save(
                buf, format="JPEG", quality=92)
            jpegs.append(buf.getvalue())
        size = f"{images[0].shape[1] * k} x {images[0].shape[0] * k}"
        for budget in (default, 100_000.0):
            os.environ["TAILOR_MAX_MEGAPIXELS_IN_FLIGHT"] = str(budget)
            with tempfile.TemporaryDirectory() as scratch, httpx.Client(timeout=600) as client:
                port = free_port()
                proc = start_server(REPO, model, 2, port, scratch, clients)
                base = f"http://127.0.0.1:{port}"
                try:
                    wait_ready(client, base, proc)
                    walls = []
                    for _ in range(rounds):
                        def post(data: bytes) -> None:
                            r = client.post(f"{base}/v1/predict", params={"formats": "png,coco_rle,polygons,ls_brush,cvat"},
                                            content=data, headers={"content-type": "image/jpeg"})
                            assert r.status_code == 200 and json.loads(r.content)["classes"], r.text[:200]
                        t0 = time.perf_counter()
                        threads = [threading.Thread(target=post, args=(d,)) for d in jpegs]
                        for t in threads:
                            t.start()
                        for t in threads:
                            t.join()
                        walls.append(time.perf_counter() - t0)
                    peak = rss_mb(proc.pid)[1]
                finally:
                    proc.terminate()
                    proc.wait(30)
            what = f"{budget:g} (default)" if budget == default else "unbounded"
            print(f"| {size} ({k}x) | {what} | {peak:.0f} | {statistics.median(walls):.2f} |")
        os.environ.pop("TAILOR_MAX_MEGAPIXELS_IN_FLIGHT", None)


if __name__ == "__main__":
    main()
