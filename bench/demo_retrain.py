"""The correction loop end to end: a model trained on part of CCP serves, the rest arrive as approved corrections
over REST, the every-N trigger queues a retrain, the worker fine-tunes, the gate promotes, the server swaps.

Prints held-out mIoU before/after. Run: python bench/demo_retrain.py (about 2 minutes on 2 CPU cores)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CCP = REPO.parent / "shared" / "data" / "ccp"

from training.dataset import write_downscaled_copy  # noqa: E402  (after the path insert above)


def small_copy(src: Path, dst: Path, ids: list[str], scale: float) -> Path:
    """Downscaled copies of photos and masks (labels kept), so the demo runs in minutes on a CPU."""
    return write_downscaled_copy(src, dst, ids, scale)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(http, proc, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            if http.get("/v1/health/ready").status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not become ready")


def submit(http, data: Path, taxonomy) -> int:
    """Each photo + its CCP mask (mapped to the taxonomy) as a correction, then approved by a reviewer."""
    from models.images import encode_png, read_label_map

    lut = taxonomy.lut_for_labels((data / "labels.txt").read_text().splitlines())
    n = 0
    for img in sorted((data / "images").glob("*.jpg")):
        mask = lut[read_label_map(data / "masks" / f"{img.stem}.png")]
        files = {"image": (img.name, img.read_bytes(), "image/jpeg"), "mask": ("m.png", encode_png(mask), "image/png")}
        r = http.post("/v1/corrections", files=files, data={"annotator": "demo", "source": "rest"})
        r.raise_for_status()
        http.post(f"/v1/corrections/{r.json()['id']}/review",
                  json={"status": "approved", "reviewer": "demo-reviewer"}).raise_for_status()
        n += 1
    return n


def follow(http, timeout: float) -> dict:
    """Wait for the triggered retrain; print its progress as it changes."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        jobs = http.get("/v1/jobs", params={"kind": "retrain"}).json()["jobs"]
        if jobs:
            job = jobs[0]
            p = job["progress"]
            line = (f"  job {job['id']} {job['status']}" + (f": {p['stage']}" if p.get("stage") else "")
                    + (f" epoch {p['epoch']}/{p['epochs']} loss {p.get('train_loss', '-')} val mIoU "
                       f"{p.get('val_miou', '-')}" if p.get("stage") == "training" and p.get("epoch") else ""))
            if line != last:
                print(line, flush=True)
                last = line
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
        time.sleep(1.0)
    raise TimeoutError("the retrain did not finish in time")


def run(args) -> dict:
    import httpx

    from models.images import decode_image
    from models.taxonomy import load_taxonomy
    from service.jobs.evaluate import evaluate
    from training.config import TrainConfig
    from training.export import export_model
    from training.train import train

    work = Path(args.workdir or tempfile.mkdtemp(prefix="tailor-demo-"))
    ids = sorted(p.stem for p in (CCP / "images").glob("*.jpg"))
    need = args.initial + args.corrections + args.heldout
    if need > len(ids):
        raise SystemExit(f"asked for {need} photos, CCP has {len(ids)}")
    step = len(ids) // need  # spread over the whole set rather than its first photos
    picked = ids[::step][:need]
    initial = small_copy(CCP, work / "initial", picked[:args.initial], args.scale)
    submitted = picked[args.initial:args.initial + args.corrections]
    corrections = small_copy(CCP, work / "corrections", submitted, args.scale)
    heldout = small_copy(CCP, work / "heldout", picked[-args.heldout:], args.scale)

    print(f"1. training the initial model on {args.initial} photos ({args.initial_epochs} epochs)", flush=True)
    cfg = TrainConfig.from_dict(dict(encoder="tu-regnetx_002", encoder_weights=None,
                                     decoder_channels=[args.width] * 5, long_side=args.long_side,
                                     crop=[args.long_side, args.long_side * 3 // 4 // 32 * 32], batch_size=4,
                                     epochs=args.initial_epochs, val_percent=15.0, threads=args.threads, lr=0.003))
    train(initial, work / "run0", cfg, log=lambda *_: None)
    model0 = work / "model0"
    export_model(work / "run0" / "best", model0,
                 parity_images=[decode_image(p) for p in sorted((initial / "images").glob("*.jpg"))[:2]])

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    env.update({"TAILOR_DATA_DIR": str(work / "data"),
                "TAILOR_RETRAIN_EVERY": str(args.corrections), "TAILOR_EVAL_PERCENT": str(args.eval_percent),
                "TAILOR_RETRAIN_CONFIG": json.dumps({"epochs": args.retrain_epochs, "lr": args.retrain_lr,
                                                     "warmup_epochs": 0.5, "threads": args.threads}),
                "TAILOR_PROMOTION_MIN_EVAL_IMAGES": "3", "TAILOR_MODEL_POLL_S": "1", "TAILOR_THREADS": "1",
                "TAILOR_WORKER_POLL_S": "1", "TAILOR_WORKER_NICE": "0"})
    if args.base:
        env["TAILOR_RETRAIN_BASE_DATA"] = str(initial)
    print(f"2. serving it on 127.0.0.1:{port} with a worker", flush=True)
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--model", str(model0),
                               "--port", str(port), "--log-level", "warning"], env=env, cwd=REPO)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        wait_ready(http, server)
        before_version = http.get("/v1/models/current").json()["version"]
        n = submit(http, corrections, load_taxonomy("fashion-13"))
        print(f"3. submitted and approved {n} corrections over REST; the trigger queued a retrain", flush=True)
        job = follow(http, args.timeout)
        if job["status"] != "succeeded":
            raise RuntimeError(f"retrain {job['status']}: {job['error']}")
        promotion = job["result"]["promotion"]
        print(f"4. gate: {promotion['decision']} ({promotion['reason']})", flush=True)
        served = before_version
        deadline = time.monotonic() + 60
        promoted = promotion["decision"] == "promoted"
        while promoted and served != job["result"]["candidate"] and time.monotonic() < deadline:
            time.sleep(0.5)
            served = http.get("/v1/models/current").json()["version"]
        candidate_dir = work / "data" / "models" / job["result"]["candidate"]
    finally:
        http.close()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
    before = evaluate(model0, heldout, threads=args.threads, show_progress=False)
    after = evaluate(candidate_dir, heldout, threads=args.threads, show_progress=False)
    control = None
    if args.control:
        print("5. control: the same fine-tune on the initial photos alone (no corrections)", flush=True)
        control = evaluate(control_model(work, initial, model0, args), heldout, threads=args.threads,
                           show_progress=False)
    report = {"initial_photos": args.initial, "corrections": n, "heldout_photos": args.heldout,
              "trained_on": job["result"]["corrections"], "base_photos": job["result"]["base_images"],
              "eval_set": promotion["eval_images"], "decision": promotion["decision"],
              "served_after": served, "candidate": job["result"]["candidate"], "before_version": before_version,
              "heldout_before": before["miou"], "heldout_after": after["miou"],
              "gate_before": promotion["baseline_metrics"].get("miou"),
              "gate_after": promotion["candidate_metrics"].get("miou"),
              "heldout_control": control["miou"] if control else None,
              "per_class": {c: (before["per_class"][c], after["per_class"][c],
                                control["per_class"][c] if control else None) for c in before["per_class"]}}
    print_table(report)
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return report


def control_model(work: Path, initial: Path, model0: Path, args) -> Path:
    """The retrain's recipe (same epochs, lr, init) on the initial photos only: what extra epochs alone give."""
    from models.card import read_card
    from training.config import TrainConfig
    from training.export import export_model
    from training.train import train

    base = read_card(model0)["training"]["config"]
    cfg = TrainConfig.from_dict({**base, "epochs": args.retrain_epochs, "lr": args.retrain_lr,
                                 "warmup_epochs": 0.5, "threads": args.threads})
    train(initial, work / "run-control", cfg, init_model=model0, log=lambda *_: None)
    export_model(work / "run-control" / "best", work / "model-control")
    return work / "model-control"


def print_table(r: dict) -> None:
    f = lambda v: "-" if v is None else f"{v:.3f}"
    print(f"\n{r['initial_photos']} initial photos; {r['corrections']} corrections ({r['trained_on']} trained on"
          f"{', plus ' + str(r['base_photos']) + ' base photos' if r['base_photos'] else ''}, {r['eval_set']} in "
          f"the gate's evaluation set); decision: {r['decision']}; serving {r['served_after']}\n")
    print("| | before | after (promoted) | control: fine-tuned without the corrections |\n|---|---|---|---|")
    print(f"| held-out mIoU ({r['heldout_photos']} photos never submitted) | {f(r['heldout_before'])} | "
          f"{f(r['heldout_after'])} | {f(r['heldout_control'])} |")
    print(f"| gate evaluation set mIoU | {f(r['gate_before'])} | {f(r['gate_after'])} | - |")
    for name, (b, a, c) in r["per_class"].items():
        if b is not None:
            print(f"| held-out IoU {name} | {f(b)} | {f(a)} | {f(c)} |")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--initial", type=int, default=40, help="CCP photos the initial model is trained on")
    ap.add_argument("--corrections", type=int, default=160, help="photos submitted as approved corrections")
    ap.add_argument("--heldout", type=int, default=60, help="photos used only for the before/after score")
    ap.add_argument("--scale", type=float, default=0.25, help="downscale factor of the photos")
    ap.add_argument("--long-side", type=int, default=128, help="model input long side")
    ap.add_argument("--width", type=int, default=16, help="U-Net decoder channels")
    ap.add_argument("--initial-epochs", type=int, default=20)
    ap.add_argument("--retrain-epochs", type=int, default=10)
    ap.add_argument("--retrain-lr", type=float, default=1e-3)
    ap.add_argument("--eval-percent", type=float, default=25.0, help="share of corrections kept for the gate")
    ap.add_argument("--base", action=argparse.BooleanOptionalAction, default=True,
                    help="mix the initial photos into the retrain (retrain_base_data)")
    ap.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                    help="also fine-tune without the corrections, to separate their effect from more epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the retrain")
    ap.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
