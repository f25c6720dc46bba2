"""NoC@85 / NoC@90 of click (and stroke) refinement on the CCP val split with the default model.

A simulated annotator edits the centre of the largest wrongly labelled area with its true class until the
photo's mIoU reaches the bar (capped); the model runs once per photo, every edit reuses its logits.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runnable as a plain script from anywhere

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from rich.progress import Progress  # noqa: E402

from bench.harness import percentile  # noqa: E402
from service.drafting.refine import Click, GrowthSettings, Refinement, Stroke, refine  # noqa: E402
from service.drafting.scores import PhotoScores, region_alternatives  # noqa: E402
from models.card import read_card  # noqa: E402
from training.dataset import load_samples, scan_dataset  # noqa: E402
from training.metrics import confusion, scores  # noqa: E402
from models.preprocessing import logits_to_labels  # noqa: E402
from training.quantize import model_input, ort_session  # noqa: E402
from models.taxonomy import Taxonomy  # noqa: E402

CCP = REPO.parent / "shared" / "data" / "ccp"
BARS = (0.75, 0.80, 0.85, 0.90)  # 85 and 90 are the standard figures; the lower two show progress below them
WITHIN = 5          # the share of photos reaching a bar within this many edits is reported
STROKE_LENGTH = 60  # px: the simulated annotator's short stroke
STROKE_WIDTH = 5


class CountingSession:
    """The ONNX Runtime session, counting its calls: a refine must never make one."""

    def __init__(self, session):
        self.session, self.calls = session, 0

    def logits(self, image: np.ndarray, spec: dict) -> np.ndarray:
        self.calls += 1
        return self.session.run(None, {"image": model_input(image, spec)})[0][0]


def photo_miou(truth: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """mIoU over the classes present in the photo's ground truth."""
    return scores(confusion(truth, labels, num_classes), [str(c) for c in range(num_classes)])["miou"]


def largest_wrong_area(labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The largest 4-connected area of one true class that the draft labels wrongly, and that class."""
    wrong = (labels != truth) & (truth != 255)
    best, best_area = None, 0
    for true_class in np.unique(truth[wrong]):
        n, parts, stats, _ = cv2.connectedComponentsWithStats((wrong & (truth == true_class)).view(np.uint8),
                                                              connectivity=4)
        if n > 1:
            part = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            if stats[part, cv2.CC_STAT_AREA] > best_area:
                best, best_area = (parts == part, int(true_class)), int(stats[part, cv2.CC_STAT_AREA])
    return best


def interior(area: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Distance to the area's border, and the interior point farthest from it (x, y)."""
    depth = cv2.distanceTransform(np.pad(area, 1).view(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    return depth, (int(x), int(y))


def click_on(area: np.ndarray, true_class: int) -> Click:
    return Click(*interior(area)[1], true_class)


def stroke_on(area: np.ndarray, true_class: int) -> Stroke:
    """A short stroke through the area's centre along its long axis, kept inside it."""
    depth, (cx, cy) = interior(area)
    m = cv2.moments(area.view(np.uint8), binaryImage=True)
    angle = 0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"])
    direction = np.array([np.cos(angle), np.sin(angle)])
    inside = depth >= min(STROKE_WIDTH / 2, depth[cy, cx])
    ends = []
    for sign in (-1, 1):
        end = (cx, cy)
        for step in range(1, STROKE_LENGTH // 2 + 1):
            x, y = (int(round(v)) for v in np.array([cx, cy]) + sign * step * direction)
            if not (0 <= x < area.shape[1] and 0 <= y < area.shape[0] and inside[y, x]):
                break
            end = (x, y)
        ends.append(end)
    return Stroke((ends[0], (cx, cy), ends[1]), true_class, STROKE_WIDTH)


def wrong_share(labels: np.ndarray, truth: np.ndarray) -> float:
    """The changed-pixel fraction: the share of labelled pixels an annotator would repaint."""
    known = truth != 255
    return float(np.count_nonzero((labels != truth) & known) / max(1, np.count_nonzero(known)))


def simulate(photo: PhotoScores, draft: np.ndarray, truth: np.ndarray, make_edit, max_edits: int,
             settings: GrowthSettings) -> dict:
    """Edit until both bars are reached or `max_edits`; NoC per bar (max_edits when never reached)."""
    refinement = Refinement(photo, draft, settings)
    num_classes = len(photo.class_names)
    miou = [photo_miou(truth, draft, num_classes)]
    wrong = [wrong_share(draft, truth)]
    latencies, edits = [], []
    while len(miou) <= max_edits and miou[-1] < max(BARS):
        target = largest_wrong_area(refinement.labels, truth)
        if target is None:
            break
        edit = make_edit(*target)
        edits.append(edit)
        t0 = time.perf_counter()
        refinement.apply(edit)
        latencies.append((time.perf_counter() - t0) * 1000)
        miou.append(photo_miou(truth, refinement.labels, num_classes))
        wrong.append(wrong_share(refinement.labels, truth))
    noc = {bar: next((i for i, v in enumerate(miou) if v >= bar), None) for bar in BARS}  # None: not reached
    # A stateless service replays every edit so far from the model's draft on each request.
    t0 = time.perf_counter()
    replayed = refine(photo, edits, draft, settings)
    replay_ms = (time.perf_counter() - t0) * 1000
    assert np.array_equal(replayed, refinement.labels), "a replay must give the same labels"
    return {"noc": noc, "miou": miou, "wrong": wrong, "latencies_ms": latencies, "replay_ms": replay_ms,
            "edits": len(edits)}


def simulate_oracle(draft: np.ndarray, truth: np.ndarray, num_classes: int, max_edits: int) -> dict:
    """The same annotator with a perfect tool: each click relabels exactly the largest wrong area.
    What the protocol allows at best, for scale."""
    labels = draft.copy()
    miou, wrong = [photo_miou(truth, labels, num_classes)], [wrong_share(labels, truth)]
    while len(miou) <= max_edits and miou[-1] < max(BARS):
        target = largest_wrong_area(labels, truth)
        if target is None:
            break
        labels[target[0]] = target[1]
        miou.append(photo_miou(truth, labels, num_classes))
        wrong.append(wrong_share(labels, truth))
    noc = {bar: next((i for i, v in enumerate(miou) if v >= bar), None) for bar in BARS}
    return {"noc": noc, "miou": miou, "wrong": wrong, "latencies_ms": [], "replay_ms": 0.0, "edits": len(miou) - 1}


def summary(runs: list[dict], max_edits: int) -> dict:
    """Means over photos; a photo that never reaches a bar counts `max_edits` edits for it."""
    latencies = [t for r in runs for t in r["latencies_ms"]]
    out = {"photos": len(runs)}
    for bar in BARS:
        nocs = [r["noc"][bar] for r in runs]
        out[f"noc@{round(bar * 100)}"] = statistics.mean(max_edits if n is None else n for n in nocs)
        out[f"within_{WITHIN}@{round(bar * 100)}"] = sum(n is not None and n <= WITHIN for n in nocs) / len(nocs)
    for k in (1, WITHIN):
        out[f"miou_after_{k}"] = statistics.mean(r["miou"][min(k, len(r["miou"]) - 1)] for r in runs)
        out[f"wrong_after_{k}"] = statistics.mean(r["wrong"][min(k, len(r["wrong"]) - 1)] for r in runs)
    out["latency_ms_median"] = statistics.median(latencies) if latencies else 0.0
    out["latency_ms_p95"] = percentile(latencies, 0.95) if latencies else 0.0
    out["edits"] = len(latencies)
    out["replay_ms_median"] = statistics.median(r["replay_ms"] for r in runs)
    out["replay_edits_median"] = statistics.median(r["edits"] for r in runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=CCP)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--photos", type=int, default=None, help="only the first N val photos")
    ap.add_argument("--every", type=int, default=1, help="every k-th val photo (a spread-out subset)")
    ap.add_argument("--max-edits", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    ap.add_argument("--no-strokes", action="store_true")
    ap.add_argument("--no-colour", action="store_true", help="refine without the photo's pixels")
    defaults = GrowthSettings()
    for name in defaults.__dataclass_fields__:
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here ('-': stdout)")
    args = ap.parse_args()
    # A negative value turns an optional setting off (colour edges: --colour-edge -1).
    settings = GrowthSettings(**{name: (None if getattr(args, name) is not None and getattr(args, name) < 0
                                        else getattr(args, name)) for name in defaults.__dataclass_fields__})

    card = read_card(args.model)
    taxonomy = Taxonomy.from_dict(card["taxonomy"], origin="card.json")
    folder = scan_dataset(args.data)
    val = folder.split(float(card.get("training", {}).get("config", {}).get("val_percent", 10.0)))[1]
    val = val[::args.every][:args.photos]
    session = CountingSession(ort_session(args.model / "model.onnx", args.threads))
    modes = {"click": click_on} if args.no_strokes else {"click": click_on, "stroke": stroke_on}
    runs: dict[str, list[dict]] = {mode: [] for mode in (*modes, "oracle")}
    changed, prepare_ms, alternatives_ms, photos = [], [], [], []
    with Progress(transient=True) as progress:
        task = progress.add_task("refining val photos", total=len(val))
        for sample, image, truth in load_samples(folder, val, taxonomy):
            logits = session.logits(image, card["input"])
            draft = logits_to_labels(logits, image.shape[:2])[0]
            t0 = time.perf_counter()
            photo = PhotoScores(logits, image.shape[:2], taxonomy.names, None if args.no_colour else image)
            prepare_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            region_alternatives(photo, draft)
            alternatives_ms.append((time.perf_counter() - t0) * 1000)
            changed.append(wrong_share(draft, truth))
            for mode, make_edit in modes.items():
                runs[mode].append(simulate(photo, draft, truth, make_edit, args.max_edits, settings))
            runs["oracle"].append(simulate_oracle(draft, truth, len(taxonomy.names), args.max_edits))
            photos.append({"id": sample.id, "draft_miou": runs["click"][-1]["miou"][0], "changed": changed[-1],
                           **{f"{mode}_noc": {str(b): r[-1]["noc"][b] for b in BARS} for mode, r in runs.items()}})
            progress.advance(task)
    assert session.calls == len(val), "a refine made a model call"
    result = {"machine": f"{os.cpu_count()} CPU cores", "settings": settings.__dict__, "photos": len(val),
              "model_calls": session.calls, "draft_changed_pixel_fraction": statistics.mean(changed),
              "draft_miou": statistics.mean(r["miou"][0] for r in runs["click"]),
              "prepare_ms_median": statistics.median(prepare_ms),
              "region_alternatives_ms_median": statistics.median(alternatives_ms),
              **{mode: summary(r, args.max_edits) for mode, r in runs.items()}, "per_photo": photos}
    print_table(result, sys.stderr if str(args.json) == "-" else sys.stdout)
    if args.json:
        text = json.dumps(result, indent=2)
        print(text) if str(args.json) == "-" else args.json.write_text(text + "\n")


def print_table(result: dict, out) -> None:
    def say(line: str = "") -> None:
        print(line, file=out)

    say(f"{result['photos']} val photos, {result['model_calls']} model calls (one per photo, none per edit); "
        f"draft mIoU {result['draft_miou']:.3f}, changed-pixel fraction {result['draft_changed_pixel_fraction']:.3f}")
    say(f"per photo: scores kept in {result['prepare_ms_median']:.1f} ms, region alternatives "
        f"{result['region_alternatives_ms_median']:.1f} ms (medians)")
    say("oracle: a perfect region per click (exactly the largest wrong area), the most this protocol allows")
    say()
    bars = [round(b * 100) for b in BARS]
    say("| edit | " + " | ".join(f"NoC@{b}" for b in bars) + f" | within {WITHIN} @85 | within {WITHIN} @90 "
        "| mIoU after 1 / 5 | changed-pixel fraction after 1 / 5 | ms per edit (median / p95) "
        "| replay of all edits (median ms / edits) |")
    say("|---" * (len(bars) + 7) + "|")
    for mode in ("click", "stroke", "oracle"):
        if mode in result:
            s = result[mode]
            timing = "| - | - |" if mode == "oracle" else (
                f"| {s['latency_ms_median']:.1f} / {s['latency_ms_p95']:.1f} "
                f"| {s['replay_ms_median']:.0f} / {s['replay_edits_median']:.0f} |")
            say(f"| {mode} | " + " | ".join(f"{s[f'noc@{b}']:.2f}" for b in bars)
                + f" | {s[f'within_{WITHIN}@85']:.0%} | {s[f'within_{WITHIN}@90']:.0%} "
                f"| {s['miou_after_1']:.3f} / {s['miou_after_5']:.3f} "
                f"| {s['wrong_after_1']:.3f} / {s['wrong_after_5']:.3f} " + timing)


if __name__ == "__main__":
    main()
