"""Serving benchmark: torch eager (CPU) vs ONNX Runtime (CPU) vs the full HTTP round trip, on CCP photos.

One run, the same photos for every path, median/p95 latency and images/s at 1 and 4 clients:

- "model call": the backend alone, `Backend.run` on the preprocessed (1, 3, h, w) input;
- "predictor": the whole shared path, preprocess + model + post-processing to full-size labels and
  confidence (`Predictor.predict`), identical code for both backends but the model call;
- "HTTP round trip": POST /v1/predict?formats=png,coco_rle,polygons,ls_brush,cvat to `tailor serve`
  (ONNX Runtime) in a subprocess: upload, JPEG decode, predictor, all five encodings, JSON; as a
  multipart upload from httpx, and as the photo itself in the body from the stdlib's http.client.

Every path is measured in interleaved rounds (each path once per round, in turn), so slow drift on
a shared machine lands on all of them alike; the ORT predictor is measured again in the HTTP rounds,
and the HTTP overheads are taken against that. Also measured: the HTTP round trip without encodings
(what upload, decode and JSON cost alone) and with one format, as annotation tools ask
(--single-formats); the post-processing alone (reference vs fast); encoding all formats; the server's
own per-stage timings and memory; the model's multiply-adds against this machine's float32 peak
(bench/roofline.py); with --baseline DIR, the server of another checkout beside this one
(before/after in one run). Run: python bench/bench_serving.py --images 20
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    RawClient, Series, free_port, interleaved, rss_mb, start_server, wait_ready)
from bench.roofline import conv_macs, quantized, sgemm_peak_gmacs  # noqa: E402

ALL_FORMATS = "png,coco_rle,polygons,ls_brush,cvat"
TORCH_MODEL, ORT_MODEL = "torch eager CPU: model call", "ONNX Runtime CPU: model call"
TORCH_PRED = "torch eager CPU: predictor (pre + model + post)"
ORT_PRED = "ONNX Runtime CPU: predictor (pre + model + post)"
ORT_PRED_HTTP = "ONNX Runtime CPU: predictor, in the HTTP rounds"
HTTP = "HTTP round trip (all five formats)"
HTTP_BARE = "HTTP round trip (no encodings: classes and scores only)"
HTTP_ONE = "HTTP round trip ({} only)"
HTTP_RAW = "HTTP round trip (all five formats), photo as the body, http.client"
BASELINE = ", baseline"


def stage_medians(images, predictor, rounds: int) -> dict[str, float]:
    """Medians (ms, 1 caller) of the pieces around the model, the alternatives interleaved per photo."""
    from models.preprocessing import logits_to_labels, logits_to_labels_reference
    from service.drafting.answer import answer_for

    times: dict[str, list[float]] = {}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        times.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        return out

    logits = [predictor.backend.run(predictor.preprocess(im)[None])[0] for im in images]
    for _ in range(rounds):
        for im, lg in zip(images, logits):
            ref = timed("post-processing, reference (every channel upsampled)", logits_to_labels_reference,
                        lg, im.shape[:2])
            new = timed("post-processing, fast (as served)", logits_to_labels, lg, im.shape[:2])
            assert (ref[0] == new[0]).all(), "fast post-processing differs from the reference"
            pred = predictor.predict(im)
            timed("encode all five formats + class summaries", answer_for, pred, ALL_FORMATS.split(","))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="CCP photos to use (each path sees the same ones)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp" / "images")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--threads", type=int, default=None,
                    help="intra-op threads for torch, ONNX Runtime and the server (default: the serving default, "
                         "one per core this process may use)")
    ap.add_argument("--clients", default="1,4", help="concurrency levels, comma list")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the photos per path")
    ap.add_argument("--max-in-flight", type=int, default=None,
                    help="the server's concurrency limit (default: the highest client count)")
    ap.add_argument("--single-formats", default="ls_brush,cvat",
                    help="also one format per request, as annotation tools ask (Label Studio: ls_brush; CVAT: cvat)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout (e.g. `git archive HEAD | tar -x -C DIR`) whose server runs beside this "
                         "tree's, the same photos in alternating rounds: before/after in one run")
    args = ap.parse_args()

    import httpx

    from models.images import decode_image
    from service.drafting.backends import default_threads
    from service.drafting.predictor import Predictor

    threads = args.threads or default_threads()
    paths = sorted(args.data.glob("*.jpg"))[: args.images]
    if not paths:
        raise SystemExit(f"no photos under {args.data}")
    raw = [p.read_bytes() for p in paths]
    images = [decode_image(b) for b in raw]
    levels = [int(c) for c in args.clients.split(",")]
    load_start = os.getloadavg()[0]

    predictors = {"onnx": Predictor(args.model, backend="onnx", threads=threads)}
    if not args.skip_torch:
        predictors["torch"] = Predictor(args.model, backend="torch", threads=threads)
    ort = predictors["onnx"]
    inputs = [ort.preprocess(im)[None] for im in images]
    in_process: dict[str, tuple[Callable, list]] = {}
    for kind, predictor in predictors.items():
        for im, x in zip(images[:2], inputs[:2]):  # warm-up: first calls allocate and pick kernels
            predictor.predict(im)
            predictor.backend.run(x)
        model, pred = (TORCH_MODEL, TORCH_PRED) if kind == "torch" else (ORT_MODEL, ORT_PRED)
        in_process[model] = (predictor.backend.run, inputs)
        in_process[pred] = (predictor.predict, images)
    order = [TORCH_MODEL, ORT_MODEL, TORCH_PRED, ORT_PRED]
    by = interleaved({k: in_process[k] for k in order if k in in_process}, levels, args.rounds)
    stages = stage_medians(images, ort, args.rounds)
    # The arithmetic a model call must do and the fastest this machine does float32 arithmetic, measured
    # right after the rounds above: how close each runtime comes to the limit, and what ratio it allows.
    macs = statistics.mean(conv_macs(args.model / "model.onnx", *ort.size_for(*im.shape[:2])) for im in images)
    peak = sgemm_peak_gmacs(threads)
    session_options = ort.backend.describe()
    version = ort.version
    del predictors, in_process  # the ORT predictor stays: it is measured again beside the HTTP paths

    # HTTP: this tree's server, and with --baseline another checkout's server beside it (same model,
    # same settings), the two taking turns round by round.
    servers = {"": REPO}
    if args.baseline:
        servers = {BASELINE: args.baseline.resolve(), "": REPO}
    max_in_flight = args.max_in_flight or max(levels)
    server_stages: dict[str, dict[str, list[float]]] = {name: {} for name in servers}
    refused = 0
    memory: dict[str, tuple[float, float]] = {}
    singles = [f for f in args.single_formats.split(",") if f]
    # this tree (name "") and the baseline with all formats; this tree with none and with each single one
    # (server, formats, raw): multipart uploads from httpx, as scripts send them; and the photo as the body
    # from the stdlib's client, the least a client can add to the round trip on these shared cores
    http_paths = ([(name, ALL_FORMATS, False) for name in servers] + [("", ALL_FORMATS, True), ("", "", False)]
                  + [("", f, False) for f in singles])
    with tempfile.TemporaryDirectory() as scratch, \
            httpx.Client(timeout=120, limits=httpx.Limits(max_connections=2 * max(levels) + 2)) as client:
        procs, bases, raw_clients = {}, {}, {}
        try:
            for name, root in servers.items():
                port = free_port()
                data_dir = Path(scratch) / (name or "this")
                data_dir.mkdir()
                procs[name] = start_server(root, args.model, threads, port, str(data_dir), max_in_flight)
                bases[name] = f"http://127.0.0.1:{port}"
                raw_clients[name] = RawClient(port)
            for name in servers:
                wait_ready(client, bases[name], procs[name])
            answers: list[tuple[str, bytes]] = []

            def poster(name: str, formats: str, raw_body: bool) -> Callable[[int], None]:
                query = f"?formats={formats}" if formats else ""

                def send(i: int) -> tuple[int, bytes]:
                    if raw_body:
                        return raw_clients[name].post(f"/v1/predict{query}", raw[i])
                    r = client.post(f"{bases[name]}/v1/predict{query}",
                                    files={"image": (paths[i].name, raw[i], "image/jpeg")})
                    return r.status_code, r.content

                def post(i: int) -> None:
                    nonlocal refused
                    while True:
                        status, body = send(i)
                        if status != 503:  # over the limit: counted and retried, as a client would
                            break
                        refused += 1
                        time.sleep(0.005)
                    if status != 200:
                        raise SystemExit(f"POST /v1/predict{query} answered {status}: {body[:300]!r}")
                    if formats == ALL_FORMATS and not raw_body:  # parsed after timing: not the server's work
                        answers.append((name, body))
                return post

            for name, formats, raw_body in http_paths:
                for i in range(min(2, len(raw))):
                    poster(name, formats, raw_body)(i)
            answers.clear()
            for c in levels:
                for _ in range(args.rounds):
                    for name, formats, raw_body in http_paths:
                        label = (HTTP_RAW if raw_body else HTTP if formats == ALL_FORMATS
                                 else HTTP_ONE.format(formats) if formats else HTTP_BARE) + name
                        by.setdefault((label, c), Series()).run(poster(name, formats, raw_body),
                                                                list(range(len(raw))), c)
                    # The reference of the overhead ratios, in the same rounds as the HTTP paths: a phase of
                    # the machine that slows one slows the other.
                    by.setdefault((ORT_PRED_HTTP, c), Series()).run(ort.predict, images, c)
                if c == 1:
                    for name, body in answers:
                        for k, v in json.loads(body)["timings_ms"].items():
                            server_stages[name].setdefault(k, []).append(v)
                answers.clear()
            memory = {name: rss_mb(proc.pid) for name, proc in procs.items()}
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(30)

    print(f"\n### Serving benchmark: model {version}, {len(paths)} CCP photos x {args.rounds} interleaved rounds, "
          f"{threads} thread(s), {os.cpu_count()} CPU core(s), load average {load_start:.1f} at the start and "
          f"{os.getloadavg()[0]:.1f} at the end ({platform.processor() or platform.machine()})\n")
    if session_options:
        print("ONNX Runtime session: " + ", ".join(f"{k} {v}" for k, v in session_options.items()) + "\n")
    print("| path | clients | median ms | p95 ms | images/s |")
    print("|---|---:|---:|---:|---:|")
    http_rows = (([HTTP + BASELINE] if args.baseline else []) + [HTTP, HTTP_RAW, HTTP_BARE]
                 + [HTTP_ONE.format(f) for f in singles])
    for name in [*order, ORT_PRED_HTTP, *http_rows]:
        for c in levels:
            if (name, c) in by:
                s = by[(name, c)]
                print(f"| {name} | {c} | {s.median:.1f} | {s.p95:.1f} | {s.ips:.2f} |")
    print("\nPieces (1 caller, medians; the two post-processing paths give identical labels):\n")
    print("| piece | median ms |")
    print("|---|---:|")
    for name, ms in stages.items():
        print(f"| {name} | {ms:.1f} |")
    for name, st in server_stages.items():
        print(f"\nServer{' (baseline)' if name else ''}: its own timings at 1 client, all five formats (medians of "
              "the response's timings_ms): " + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in st.items()))
    print()
    for c in levels:
        if (TORCH_MODEL, c) in by:
            for t_name, o_name, what in ((TORCH_MODEL, ORT_MODEL, "model call"), (TORCH_PRED, ORT_PRED, "predictor")):
                t, o = by[(t_name, c)], by[(o_name, c)]
                print(f"- ORT vs torch eager, {what}, {c} client(s): {t.median / o.median:.2f}x median latency, "
                      f"{o.ips / t.ips:.2f}x throughput (target >= 2x)")
    floor_ms = macs / (peak * 1e9) * 1000
    print(f"- Arithmetic: {macs / 1e9:.2f} GMAC per model call (convolutions, mean over these photos' input sizes); "
          f"ONNX Runtime's float32 matrix product runs at {peak:.0f} GMAC/s here with {threads} thread(s), so no "
          f"float32 model call can take less than {floor_ms:.1f} ms"
          + (" (this ONNX graph is int8: the float32 peak does not bound it)"
             if quantized(args.model / "model.onnx") else ""))
    for c in levels:
        rates = {name: macs * by[(name, c)].ips / 1e9 for name in (TORCH_MODEL, ORT_MODEL) if (name, c) in by}
        if len(rates) == 2:
            t_rate, o_rate = rates[TORCH_MODEL], rates[ORT_MODEL]
            print(f"- {c} client(s): torch eager computes {t_rate:.0f} GMAC/s ({t_rate / peak:.0%} of that peak), "
                  f"ONNX Runtime {o_rate:.0f} GMAC/s ({o_rate / peak:.0%}): against this torch eager, a float32 "
                  f"runtime at the peak itself would be {peak / t_rate:.2f}x")
    for c in levels:
        p, early = by[(ORT_PRED_HTTP, c)], by[(ORT_PRED, c)]
        print(f"- ORT predictor, {c} client(s): {p.median:.1f} ms in the HTTP rounds, {early.median:.1f} ms in the "
              "in-process rounds before them (the overheads below are against the first)")
        for row in http_rows:
            h = by[(row, c)]
            m = by[(ORT_MODEL, c)].median if (ORT_MODEL, c) in by else None
            print(f"- {row}, {c} client(s): {(h.median - p.median) / p.median * 100:+.0f}% over the ORT predictor "
                  f"({h.median:.1f} vs {p.median:.1f} ms); {h.ips:.2f} vs {p.ips:.2f} images/s (target: under +25%)"
                  + (f"; the whole round trip is {h.median / m:.2f}x the bare model call ({m:.1f} ms)" if m else ""))
        if args.baseline:
            old, new = by[(HTTP + BASELINE, c)], by[(HTTP, c)]
            print(f"- this tree vs baseline, all five formats, {c} client(s): {old.median / new.median:.2f}x median "
                  f"latency, {new.ips / old.ips:.2f}x throughput")
    for name, (rss, peak) in memory.items():
        print(f"- serving process RSS{' (baseline)' if name else ''}: {rss:.0f} MiB at the end, {peak:.0f} MiB peak "
              f"(limit {max_in_flight} in flight; target < 1.5 GB)")
    print(f"- requests refused with 503 (and retried): {refused}")


if __name__ == "__main__":
    main()
