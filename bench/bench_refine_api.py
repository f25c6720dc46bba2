"""Per-click latency of POST /v1/refine on CCP val photos: the service in-process, each photo drafted once by
/v1/predict (which keeps it), then one click by content hash and one with the photo itself, in ls_brush.

Server-side timings from the answers (read, lookup, refine, encode, total) and the client's round trip;
the service's backend counts its calls, and a refine of a kept draft must make none.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runnable as a plain script from anywhere

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from bench.harness import percentile  # noqa: E402
from models.card import read_card  # noqa: E402
from service.api.app import create_app  # noqa: E402
from service.drafting.predictor import Predictor  # noqa: E402
from service.formats import png  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.dataset import scan_dataset  # noqa: E402

CCP = REPO.parent / "shared" / "data" / "ccp"


class CountingBackend:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name, self.device = inner.name, inner.device

    def run(self, batch):
        self.calls += 1
        return self.inner.run(batch)

    def describe(self):
        return self.inner.describe()


def click_on_largest_region(answer: dict) -> dict:
    """A click with the runner-up class at the interior of the draft's largest region."""
    labels = png.decode(base64.b64decode(answer["label_map_png"]))
    region = answer["regions"][0]
    mask = labels == answer["class_names"].index(region["class"])
    depth = cv2.distanceTransform(np.pad(mask, 1).view(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    return {"x": int(x), "y": int(y), "class": region["runner_up"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=CCP)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--photos", type=int, default=30, help="the first N val photos")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    args = ap.parse_args()

    card = read_card(args.model)
    folder = scan_dataset(args.data)
    val = folder.split(float(card.get("training", {}).get("config", {}).get("val_percent", 10.0)))[1][:args.photos]
    model = Predictor(args.model, threads=args.threads)
    counted = CountingBackend(model.backend)
    model.backend = counted
    rows: dict[str, list[dict]] = {"by content hash": [], "with the photo (multipart)": []}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, model_dir=args.model, data_dir=Path(tmp), threads=args.threads)
        with TestClient(create_app(settings, predictor=model)) as client:
            for sample in val:
                photo = sample.image.read_bytes()
                drafted = client.post("/v1/predict", params={"formats": "png"},
                                      files={"image": ("photo.jpg", photo, "image/jpeg")}).raise_for_status().json()
                edits = [click_on_largest_region(drafted)]
                calls = counted.calls
                requests = {
                    "by content hash": {"json": {"content_hash": drafted["content_hash"], "edits": edits,
                                                 "formats": "ls_brush"}},
                    "with the photo (multipart)": {"data": {"edits": json.dumps(edits), "formats": "ls_brush"},
                                                   "files": {"image": ("photo.jpg", photo, "image/jpeg")}}}
                for path, request in requests.items():
                    t0 = time.perf_counter()
                    answer = client.post("/v1/refine", **request).raise_for_status().json()
                    rows[path].append({**answer["timings_ms"], "client": (time.perf_counter() - t0) * 1000})
                assert counted.calls == calls, "a refine of a kept draft called the model"
    print(f"{len(val)} CCP val photos, {os.cpu_count()} CPU cores, one click each (the runner-up class at the "
          "largest region's interior), answer in ls_brush; model calls during refines: 0")
    print()
    print("| path | refine ms (median / p95) | answer ms (regions, encoding) | server total ms "
          "| client round trip ms (median / p95) |")
    print("|---|---:|---:|---:|---:|")
    for path, timings in rows.items():
        def stat(key: str) -> str:
            values = [t[key] for t in timings]
            return f"{statistics.median(values):.1f} / {percentile(values, 0.95):.1f}"
        print(f"| {path} | {stat('refine')} | {stat('encode')} | {stat('total')} | {stat('client')} |")


if __name__ == "__main__":
    main()
