"""The README's overlay figure: CCP photos beside the default model's draft, as /v1/predict/overlay.png draws it.

Uses validation photos (never trained on) by default. Run from the repository root:
    python bench/overlay_figure.py [--ids 0038 0115 0232] [--out docs/overlay.jpg]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.images import decode_image  # noqa: E402
from service.drafting.predictor import Predictor  # noqa: E402
from service.formats import png  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", nargs="+", default=["0038", "0039", "0129"], help="CCP image ids")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--height", type=int, default=412, help="height of each panel in pixels")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "overlay.jpg")
    args = ap.parse_args()
    predictor = Predictor(args.model, backend="onnx")
    panels = []
    for image_id in args.ids:
        photo = decode_image(args.data / "images" / f"{image_id}.jpg")
        labels = predictor.predict(photo).labels
        for picture in (photo, png.overlay(photo, labels, predictor.taxonomy.palette())):
            img = Image.fromarray(picture)
            panels.append(img.resize((round(img.width * args.height / img.height), args.height), Image.LANCZOS))
    strip = Image.new("RGB", (sum(p.width for p in panels), args.height))
    x = 0
    for panel in panels:
        strip.paste(panel, (x, 0))
        x += panel.width
    strip.save(args.out, quality=85)
    print(f"wrote {args.out} ({strip.width}x{strip.height}) with model {predictor.version}: {', '.join(args.ids)}")


if __name__ == "__main__":
    main()
