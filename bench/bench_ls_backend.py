"""Tailor's Label Studio answer against the backend people write themselves, on the same photos and model.

The do-it-yourself path: PIL decode with EXIF rotation, torch eager fp32, logits upsampled to the photo's
size with F.interpolate, softmax and argmax, then label_studio_sdk's mask2rle once per class present.
Tailor's path: POST /v1/predict?formats=ls_brush to `tailor serve` (raw photo body). Interleaved rounds.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from bench.harness import RawClient, free_port, interleaved, start_server, wait_ready  # noqa: E402
from models.card import read_card  # noqa: E402
from training.models import build_model  # noqa: E402
from models.preprocessing import input_size  # noqa: E402

DIY, TAILOR = "do-it-yourself backend (torch eager)", "Tailor HTTP ls_brush"


class DiyBackend:
    """What a Label Studio ML backend's predict() typically does with an smp model, written plainly."""

    def __init__(self, model_dir: Path, threads: int):
        from label_studio_sdk.converter.brush import mask2rle

        torch.set_num_threads(threads)
        self.mask2rle = mask2rle
        self.card = read_card(model_dir)
        self.model = build_model(self.card["arch"]).eval()
        self.model.load_state_dict(load_file(str(model_dir / "weights.safetensors")))
        spec = self.card["input"]
        self.long_side, self.multiple = spec["long_side"], spec["size_multiple"]
        self.mean = torch.tensor(spec["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(spec["std"]).view(1, 3, 1, 1)
        self.names = [c["name"] for c in self.card["taxonomy"]["classes"]]

    def __call__(self, data: bytes) -> list[dict]:
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        W, H = image.size
        h, w = input_size(H, W, self.long_side, self.multiple)
        x = torch.from_numpy(np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0)
        x = (x.permute(2, 0, 1)[None] - self.mean) / self.std
        with torch.inference_mode():
            logits = F.interpolate(self.model(x), size=(H, W), mode="bilinear", align_corners=False)
            labels = logits.softmax(1).argmax(1)[0].numpy().astype(np.uint8)
        results = []
        for c in np.unique(labels):
            if c == 0:
                continue
            rle = self.mask2rle((labels == c).astype(np.uint8) * 255)
            results.append({"type": "brushlabels", "original_width": W, "original_height": H,
                            "value": {"format": "rle", "rle": rle, "brushlabels": [self.names[c]]}})
        return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="CCP photos (both paths see the same ones)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp" / "images")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, and the server's inference threads")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the photos per path")
    ap.add_argument("--json", type=Path, help="write the medians here")
    args = ap.parse_args()

    paths = sorted(args.data.glob("*.jpg"))[: args.images]
    if not paths:
        raise SystemExit(f"no photos under {args.data}")
    raw = [p.read_bytes() for p in paths]
    diy = DiyBackend(args.model, args.threads)
    with tempfile.TemporaryDirectory() as scratch, httpx.Client(timeout=120) as client:
        port = free_port()
        proc = start_server(REPO, args.model, args.threads, port, scratch, max_in_flight=2)
        try:
            wait_ready(client, f"http://127.0.0.1:{port}", proc)
            tailor = RawClient(port)

            def ask_tailor(data: bytes) -> None:
                status, body = tailor.post("/v1/predict?formats=ls_brush", data)
                if status != 200:
                    raise SystemExit(f"POST /v1/predict answered {status}: {body[:300]!r}")

            for data in raw[:2]:  # warm-up: first calls allocate and pick kernels
                diy(data)
                ask_tailor(data)
            series = interleaved({DIY: (diy, raw), TAILOR: (ask_tailor, raw)}, [1], args.rounds)
        finally:
            proc.terminate()
            proc.wait(30)
    a, b = series[(DIY, 1)], series[(TAILOR, 1)]
    card = read_card(args.model)
    print(f"\nmodel {card['version']} ({card['arch']['encoder_name']}, long side {card['input']['long_side']}), "
          f"{len(raw)} CCP photos x {args.rounds} rounds, 1 client, {args.threads} threads\n")
    print("| path | median ms | p95 ms |\n|---|---|---|")
    for name, s in ((DIY, a), (TAILOR, b)):
        print(f"| {name} | {s.median:.1f} | {s.p95:.1f} |")
    print(f"\nTailor is {a.median / b.median:.2f}x faster per photo (median)")
    if args.json:
        args.json.write_text(json.dumps({"diy_ms": a.median, "tailor_ms": b.median, "ratio": a.median / b.median,
                                         "model": card["version"], "images": len(raw), "rounds": args.rounds}))


if __name__ == "__main__":
    main()
