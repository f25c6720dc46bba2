"""Training-step speed on CPU under different memory allocator settings, side by side in one run.

Each setting runs in its own child process (glibc reads its tunables at start): glibc's defaults,
glibc with transparent huge pages (what `tailor train` uses), and jemalloc when it is installed.
Reports ms per step, user/system CPU seconds and minor page faults. Run: python bench/bench_train_step.py
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")

CHILD = r"""
import json, os, resource, sys, time
import torch, torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss
from training.config import TrainConfig
from training.models import build_model
h, w, batch, steps = map(int, sys.argv[1:5])
torch.set_num_threads(2); torch.manual_seed(0)
model = build_model(TrainConfig().arch(13))
opt = torch.optim.AdamW(model.parameters(), 1e-4)
dice = DiceLoss(mode="multiclass", ignore_index=255)
x, y = torch.randn(batch, 3, h, w), torch.randint(0, 13, (batch, h, w))
def step():
    out = model(x); loss = F.cross_entropy(out, y) + dice(out, y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(2):
    step()
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ms": (time.perf_counter() - t0) / steps * 1000, "user": r1.ru_utime - r0.ru_utime,
                  "sys": r1.ru_stime - r0.ru_stime, "faults": r1.ru_minflt - r0.ru_minflt}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="448x288", help="crop HxW")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (a fresh process each); medians")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    base.update(NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(REPO))
    settings = {"glibc defaults": {}, "glibc + huge pages (tailor train)": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}}
    if JEMALLOC.is_file():
        settings["jemalloc"] = {"LD_PRELOAD": str(JEMALLOC)}
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine lands on every setting alike
        for name, extra in settings.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(h), str(w), str(args.batch), str(args.steps)],
                                 env={**base, **extra}, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    ref = rows["glibc defaults"]["ms"]
    print(f"\n### Training step, U-Net tu-regnetx_002, batch {args.batch} at {h}x{w}, 2 threads: medians of "
          f"{args.rounds} processes x {args.steps} steps\n")
    print("| allocator | ms/step | vs glibc defaults | user s | system s | minor faults |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['ms']:.0f} | {ref / r['ms']:.2f}x | {r['user']:.1f} | {r['sys']:.1f} | {int(r['faults']):,} |")


if __name__ == "__main__":
    main()
