"""Benchmark: our mask encoders against the reference libraries, per whole label map (every class present).
Label Studio brush RLE vs label_studio_sdk.converter.brush.mask2rle, COCO RLE vs pycocotools.mask.encode,
on real CCP masks mapped to fashion-13; prints median milliseconds and the speed-up, after checking equality.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable as a plain script from anywhere

import pycocotools.mask as coco_mask  # noqa: E402
from label_studio_sdk.converter.brush import mask2rle  # noqa: E402

from bench.timing import timed_ms  # noqa: E402
from models.images import read_label_map  # noqa: E402
from models.taxonomy import load_taxonomy  # noqa: E402
from service.formats import coco_rle, ls_brush  # noqa: E402


def load_masks(data: Path, count: int) -> list[np.ndarray]:
    labels = (data / "labels.txt").read_text().splitlines()
    lut = load_taxonomy("fashion-13").lut_for_labels(labels)
    paths = sorted((data / "masks").glob("*.png"))
    step = max(1, len(paths) // count)
    return [lut[read_label_map(p)] for p in paths[::step][:count]]


def sdk_brush(lm: np.ndarray) -> dict[int, list[int]]:
    return {c: mask2rle((lm == c).astype(np.uint8) * np.uint8(255)) for c in np.unique(lm).tolist()}


def coco_reference(lm: np.ndarray) -> dict[int, dict]:
    # pycocotools needs one binary Fortran-order mask per class; building them is part of the job.
    return {c: coco_mask.encode(np.asfortranarray(lm == c, dtype=np.uint8)) for c in np.unique(lm).tolist()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp")
    parser.add_argument("--masks", type=int, default=5)
    parser.add_argument("--reps", type=int, default=9, help="timed calls per mask and encoder")
    args = parser.parse_args(argv)

    masks = load_masks(args.data, args.masks)
    for lm in masks:  # a benchmark of wrong output is worthless: check equality first
        ref_b = sdk_brush(lm)
        assert ls_brush.encode_label_map(lm) == ref_b, "brush RLE differs from label_studio_sdk"
        ours_c = coco_rle.encode_label_map(lm)
        assert {c: r["counts"].encode() for c, r in ours_c.items()} == \
            {c: r["counts"] for c, r in coco_reference(lm).items()}, "COCO RLE differs from pycocotools"

    stacks = [np.asfortranarray(np.stack([lm == c for c in np.unique(lm)], axis=2), dtype=np.uint8)
              for lm in masks]
    rows = [
        ("LS brush RLE", "ours (service.formats.ls_brush)", lambda lm, i: ls_brush.encode_label_map(lm),
         "label_studio_sdk mask2rle", lambda lm, i: sdk_brush(lm)),
        ("COCO RLE", "ours (service.formats.coco_rle)", lambda lm, i: coco_rle.encode_label_map(lm),
         "label_studio_sdk mask2rle (the serving target's yardstick)", lambda lm, i: sdk_brush(lm)),
        ("COCO RLE", "ours (service.formats.coco_rle)", lambda lm, i: coco_rle.encode_label_map(lm),
         "pycocotools (with class masks)", lambda lm, i: coco_reference(lm)),
        ("COCO RLE", "ours (service.formats.coco_rle)", lambda lm, i: coco_rle.encode_label_map(lm),
         "pycocotools encode only", lambda lm, i: coco_mask.encode(stacks[i])),
    ]
    classes = [len(np.unique(lm)) for lm in masks]
    print(f"{len(masks)} CCP masks mapped to fashion-13, shapes {sorted({lm.shape for lm in masks})}, "
          f"classes per mask {classes}; median of {args.reps} timed calls per mask, ms per whole mask")
    print(f"{'format':<13} {'ours':>9} {'reference':>10} {'speed-up':>9}  reference")
    for fmt, _, ours_fn, ref_name, ref_fn in rows:
        ours_ms = statistics.median(t for i, lm in enumerate(masks) for t in timed_ms(lambda: ours_fn(lm, i), args.reps, warmup=True))
        ref_ms = statistics.median(t for i, lm in enumerate(masks) for t in timed_ms(lambda: ref_fn(lm, i), args.reps, warmup=True))
        print(f"{fmt:<13} {ours_ms:>9.3f} {ref_ms:>10.3f} {ref_ms / ours_ms:>8.1f}x  {ref_name}")


if __name__ == "__main__":
    main()
