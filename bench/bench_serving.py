"""Serving benchmark: torch eager (CPU) vs ONNX Runtime (CPU) vs the full HTTP round trip, on CCP photos.

Median/p95 latency and images/s at 1 and 4 clients, server RSS, ORT speed-up and HTTP overhead, as a
markdown table. Run: python bench/bench_serving.py --images 20  (server: a subprocess on 127.0.0.1)
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ALL_FORMATS = "png,coco_rle,polygons,ls_brush,cvat"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(call, items: list, clients: int) -> dict:
    """Run call(item) for every item with `clients` concurrent callers; latency per call, overall rate."""
    latencies: list[float] = []

    def timed(item):
        t0 = time.perf_counter()
        call(item)
        latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    if clients == 1:
        for item in items:
            timed(item)
    else:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(timed, items))
    wall = time.perf_counter() - t0
    return {"median": statistics.median(latencies), "p95": percentile(latencies, 0.95), "ips": len(items) / wall}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    kb = lambda k: float(fields.get(k, "0 kB").split()[0]) / 1024  # noqa: E731
    return kb("VmRSS"), kb("VmHWM")


def start_server(model: Path, threads: int, port: int, jobs_dir: str) -> subprocess.Popen:
    env = {**os.environ, "TAILOR_JOBS_DIR": jobs_dir, "TAILOR_MAX_IN_FLIGHT": "64",
           "TAILOR_SETTINGS_FILE": "", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", "from service.cli import main; main()", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--model", str(model), "--backend", "onnx", "--threads", str(threads),
           "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir())


def wait_ready(client, base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if client.get(f"{base}/v1/health/ready").status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="CCP photos to use (each path sees the same ones)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp" / "images")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="intra-op threads for torch, ONNX Runtime and the server (default: all cores)")
    ap.add_argument("--clients", default="1,4", help="concurrency levels, comma list")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()

    import httpx

    from service.inference import Predictor
    from training.images import decode_image

    paths = sorted(args.data.glob("*.jpg"))[: args.images]
    if not paths:
        raise SystemExit(f"no photos under {args.data}")
    raw = [p.read_bytes() for p in paths]
    images = [decode_image(b) for b in raw]
    levels = [int(c) for c in args.clients.split(",")]
    rows: list[tuple[str, int, dict]] = []

    backends = ["onnx"] if args.skip_torch else ["torch", "onnx"]
    version = ""
    for kind in backends:
        predictor = Predictor(args.model, backend=kind, threads=args.threads)
        version = predictor.version
        for im in images[:2]:
            predictor.predict(im)  # warm-up: first calls allocate and pick kernels
        label = "torch eager CPU" if kind == "torch" else "ONNX Runtime CPU"
        for c in levels:
            rows.append((label, c, measure(predictor.predict, images, c)))
        del predictor

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as jobs_dir:
        proc = start_server(args.model, args.threads, port, jobs_dir)
        try:
            with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=max(levels) + 2)) as client:
                wait_ready(client, base, proc)

                def post(i: int) -> None:
                    r = client.post(f"{base}/v1/predict", params={"formats": ALL_FORMATS},
                                    files={"image": (paths[i].name, raw[i], "image/jpeg")})
                    r.raise_for_status()

                for i in range(min(2, len(raw))):
                    post(i)
                for c in levels:
                    rows.append(("HTTP round trip (all formats)", c, measure(post, list(range(len(raw))), c)))
                rss, peak = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)

    by = {(name, c): m for name, c, m in rows}
    print(f"\n### Serving benchmark: model {version}, {len(paths)} CCP photos, {args.threads} thread(s), "
          f"{os.cpu_count()} CPU core(s), load average {os.getloadavg()[0]:.1f} at the end "
          f"({platform.processor() or platform.machine()})\n")
    print("| path | clients | median ms | p95 ms | images/s |")
    print("|---|---:|---:|---:|---:|")
    for name, c, m in rows:
        print(f"| {name} | {c} | {m['median']:.1f} | {m['p95']:.1f} | {m['ips']:.2f} |")
    print()
    ort, http = "ONNX Runtime CPU", "HTTP round trip (all formats)"
    for c in levels:
        if ("torch eager CPU", c) in by:
            t, o = by[("torch eager CPU", c)], by[(ort, c)]
            print(f"- ORT vs torch speed-up at {c} client(s): {t['median'] / o['median']:.2f}x median latency, "
                  f"{o['ips'] / t['ips']:.2f}x throughput")
    for c in levels:
        o, h = by[(ort, c)], by[(http, c)]
        print(f"- HTTP overhead at {c} client(s): {(h['median'] - o['median']) / o['median'] * 100:+.0f}% of model "
              f"time (median {h['median']:.1f} vs {o['median']:.1f} ms; includes upload, decode and encoding "
              f"all five formats)")
    print(f"- serving process RSS: {rss:.0f} MiB now, {peak:.0f} MiB peak")


if __name__ == "__main__":
    main()
