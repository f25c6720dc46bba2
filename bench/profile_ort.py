"""Where an ONNX Runtime model call's time goes: its profiler on the served session, over CCP photos.

The session has the serving options (all graph optimisations, the serving threads, no spinning); the
kernel times of every call after a warm-up are summed by operator type and by node, as shares of the
total. Run: python bench/profile_ort.py --images 20
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_ort import session  # noqa: E402


def kernel_times(trace: list[dict]) -> tuple[collections.Counter, collections.Counter]:
    """(microseconds by operator type, by (node, type)) from a profiler trace's kernel events."""
    by_type, by_node = collections.Counter(), collections.Counter()
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            by_type[op] += event["dur"]
            by_node[(event["name"].removesuffix("_kernel_time"), op)] += event["dur"]
    return by_type, by_node


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp" / "images")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--nodes", type=int, default=15, help="how many of the slowest nodes to list")
    args = ap.parse_args(argv)

    from models.images import decode_image
    from service.drafting.backends import default_threads
    from service.drafting.predictor import Predictor

    photos = sorted(args.data.glob("*.jpg"))[: args.images]
    if not photos:
        raise SystemExit(f"no photos under {args.data}")
    predictor = Predictor(args.model, backend="onnx")
    inputs = [predictor.preprocess(decode_image(p.read_bytes()))[None] for p in photos]
    threads = default_threads()
    warm_up = 2  # the first calls allocate and pick kernels: not what serving pays per call
    with tempfile.TemporaryDirectory() as scratch:
        s = session(args.model / "model.onnx", threads, profile_prefix=str(Path(scratch) / "profile"))
        name = s.get_inputs()[0].name
        for x in (inputs * warm_up)[:warm_up] + inputs:
            s.run(None, {name: x})
        trace = json.loads(Path(s.end_profiling()).read_text())
    runs = sorted(e["ts"] for e in trace if e.get("cat") == "Session" and e["name"] == "model_run")
    trace = [e for e in trace if e["ts"] >= runs[warm_up]]
    by_type, by_node = kernel_times(trace)
    total = sum(by_type.values())
    print(f"\n### ONNX Runtime kernel time by operator: {args.model.name}, {len(inputs)} CCP photos, "
          f"{threads} thread(s); {total / 1000 / len(inputs):.1f} ms of kernels per call\n")
    print("| operator | share |\n|---|---:|")
    for op, us in by_type.most_common():
        print(f"| {op} | {us / total:.1%} |")
    print(f"\nThe {args.nodes} slowest nodes (NCHWc-layout nodes are named after the output they make):\n")
    print("| node | operator | share |\n|---|---|---:|")
    for (node, op), us in by_node.most_common(args.nodes):
        print(f"| {node} | {op} | {us / total:.1%} |")


if __name__ == "__main__":
    main()
