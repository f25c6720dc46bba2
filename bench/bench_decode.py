"""Large photos: decoding a JPEG only as large as the model needs, against decoding it whole.

CCP val photos enlarged 1x to 7x and saved as JPEGs (7x is about 3900 x 5800, a phone photo), each
predicted both ways in interleaved rounds: decode + preprocess time, the whole prediction, and how
the labels compare (agreement with each other, val mIoU against the enlarged annotations).
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
    args = ap.parse_args()

    import cv2
    from PIL import Image

    from service.inference import Predictor
    from service.inference.backends import default_threads
    from training.dataset import load_samples, scan_dataset
    from training.images import decode_image, decode_image_for
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


if __name__ == "__main__":
    main()
