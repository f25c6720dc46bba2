"""Stand-in annotators for the README walkthrough: each corrects the photos of their share of a worklist.

A real team corrects in Label Studio or CVAT; here each annotator smooths the draft's edges with a
median filter of their own size and erases specks, stored as corrections like any other. A few photos
are corrected twice (for agreement), and a reviewer approves all but one (left for the QA step).
Run: python bench/simulate_annotators.py WORKLIST [--double 2] [--reviewer rita]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# Each stand-in's habit: the median filter size they smooth edges with (px, odd).
HABITS = {0: 5, 1: 9, 2: 7, 3: 11}
SPECK_PX = 150        # parts of a class smaller than this are erased to the surrounding class


def correct(draft: np.ndarray, median: int) -> np.ndarray:
    """The draft with smoothed class edges and no small specks: what a quick annotator would hand in."""
    out = cv2.medianBlur(draft, median)
    for c in np.unique(out):
        if c == 0:
            continue
        n, parts, stats, _ = cv2.connectedComponentsWithStats((out == c).astype(np.uint8), connectivity=8)
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < SPECK_PX:
                speck = parts == i
                ring = cv2.dilate(speck.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~speck
                out[speck] = np.bincount(out[ring], minlength=256).argmax()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("worklist", help="worklist name or id")
    ap.add_argument("--double", type=int, default=2, help="photos also corrected by a second annotator")
    ap.add_argument("--reviewer", default="rita", help="who approves the corrections")
    args = ap.parse_args()

    from service.review.stored_maps import item_draft, taxonomy_for
    from service.settings import Settings
    from service.store.corrections import review, save_correction
    from service.store.db import store_from_settings
    from service.store.worklists import get_worklist

    settings = Settings()
    store = store_from_settings(settings)
    with store.session() as s:
        wl = get_worklist(s, args.worklist)
        tax = taxonomy_for(wl.taxonomy)
        names = wl.annotators or ["annotator"]
        items = sorted(wl.items, key=lambda i: (i.annotator or "", i.position or 0))
        saved = []
        for k, item in enumerate(items):
            who = item.annotator or names[0]
            habit = HABITS[names.index(who) % len(HABITS)] if who in names else 5
            row = save_correction(s, store.files, image_sha256=item.image_sha256,
                                  label_map=correct(item_draft(store.files, item), habit), taxonomy=tax,
                                  source="import", annotator=who)
            saved.append(row.id)
            if k < args.double and len(names) > 1:
                other = names[(names.index(who) + 1) % len(names)] if who in names else names[1]
                save_correction(s, store.files, image_sha256=item.image_sha256,
                                label_map=correct(item_draft(store.files, item), HABITS[names.index(other) % 4]),
                                taxonomy=tax, source="import", annotator=other, notes="second opinion")
        for cid in saved[:-1]:   # the last stays submitted: the QA step decides about it
            review(s, cid, "approved", args.reviewer)
        print(f"{len(saved)} photos corrected by {', '.join(names)}; {min(args.double, len(saved))} twice; "
              f"{len(saved) - 1} approved by {args.reviewer}, 1 left for review")


if __name__ == "__main__":
    main()
