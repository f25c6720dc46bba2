"""Offline pre-annotation (`tailor predict`, batch jobs): photos in work at once, side by side in one run.

predict_files on the same CCP photos with 1, 2 and 3 photos in work, in interleaved rounds, each writing
masks, COCO and CSV to a scratch folder; reports images/s and checks the outputs are identical.
Run: python bench/bench_offline.py --images 40 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--levels", default="1,2,3", help="photos in work at once, comma list")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp" / "images")
    args = ap.parse_args()

    from service.drafting.backends import default_threads
    from service.drafting.batch import predict_files
    from service.drafting.engine import Engine
    from service.drafting.predictor import Predictor
    from service.settings import Settings

    photos = sorted(args.data.glob("*.jpg"))[: args.images]
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        settings = Settings(_env_file=None, data_dir=scratch / "data",
                            model_dir=args.model)
        engine = Engine(Predictor(args.model, backend="onnx", threads=default_threads()), settings)
        inputs = [(p, p.stem) for p in photos]
        predict_files(engine, inputs[:3], scratch / "warm")
        rates: dict[int, list[float]] = {n: [] for n in levels}
        for r in range(args.rounds):
            for n in levels:
                t0 = time.perf_counter()
                predict_files(engine, inputs, scratch / f"{n}-{r}", concurrency=n)
                rates[n].append(len(inputs) / (time.perf_counter() - t0))
        engine.close()
        reference = scratch / f"{levels[0]}-0"
        same = all((scratch / f"{n}-0" / "coco.json").read_bytes() == (reference / "coco.json").read_bytes()
                   for n in levels)
    print(f"\n### Offline drafts: {len(photos)} CCP photos x {args.rounds} interleaved rounds, model "
          f"{engine.predictor.version}, {default_threads()} thread(s), {os.cpu_count()} CPU core(s)\n")
    print("| photos in work | images/s (median) | vs 1 |\n|---:|---:|---:|")
    base = statistics.median(rates[levels[0]])
    for n in levels:
        med = statistics.median(rates[n])
        print(f"| {n} | {med:.2f} | {med / base:.2f}x |")
    print(f"\nCOCO output identical at every level: {same}")


if __name__ == "__main__":
    main()
