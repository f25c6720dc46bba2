"""The exact argmax of bilinearly upsampled logits, without upsampling every channel.

Where all four low-resolution neighbours share their winner, a convex combination keeps it; only mixed
cells are interpolated, for the classes that can still win, and near-ties are settled by cv2 itself.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np


@functools.lru_cache(maxsize=64)
def _source_coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None:
    """cv2's INTER_LINEAR sampling along one axis: first and second source index, weight of the second.

    Pixel centres map as src = (dst + 0.5) * n_in / n_out - 0.5, clamped to the first and last source
    pixel; here exactly, in integers: every position is a multiple of 1 / (2 n_out). cv2 computes
    it in float32 (or double, through IPP), off by up to `_position_error(n_in)`. Where a position
    is that close to a whole number without being one, cv2 may pick other source pixels: None. The
    last item says whether some position is a whole number, where cv2 may put a weight of up to
    that error on a third source pixel (the caller widens its rounding slack for it).
    """
    num = (2 * np.arange(n_out, dtype=np.int64) + 1) * n_in - n_out
    den = 2 * n_out
    whole, rest = np.divmod(num, den)
    frac = rest / den
    error = _position_error(n_in)
    if np.any((rest > 0) & ((frac <= error) | (frac >= 1 - error))):
        return None
    clamped = (num < 0) | (whole >= n_in - 1)
    i0 = np.clip(whole, 0, n_in - 1).astype(np.intp)
    out = (i0, np.minimum(i0 + 1, n_in - 1), np.where(clamped, 0.0, frac).astype(np.float32))
    for arr in out:
        arr.setflags(write=False)  # cached: shared by every call with these sizes
    return (*out, bool(np.any(rest == 0)))


def _position_error(n_in: int) -> float:
    # Half an ulp of a float32 in [n_in/2, n_in) is at most 2**-24 * 2**ceil(log2(n_in)); doubled.
    return 2.0 ** -23 * 2.0 ** math.ceil(math.log2(max(n_in, 2)))


def upsampled_argmax(logits: np.ndarray, top: np.ndarray, second: np.ndarray, low_labels: np.ndarray,
                      H: int, W: int) -> np.ndarray | None:
    """The argmax of the bilinearly upsampled logits, equal to `_reference_labels` pixel for pixel.

    A bilinear sample is a weighted mean (weights >= 0, summing to 1) of its 2x2 source pixels, with
    the same weights for every channel. So where one class leads every other at all four source
    pixels by more than float rounding can eat, it leads in the sample too: those output pixels
    (about 97% on photos) take the low-resolution label by lookup. Samples of mixed 2x2 cells are
    interpolated here, for the classes that can win in that cell only, and decided when the winner
    leads every other by more than cv2's result can differ from ours: its sample positions may be
    off by up to `_position_error` (float32 coordinates), and both round. The few within that bound
    (near-ties, a dozen pixels per photo) are settled by cv2.resize itself (`_settle_with_cv2`).
    None where this is not proven to apply: a downscale, non-finite logits, sizes over 16k pixels.
    """
    C, h, w = logits.shape
    if H < h or W < w or C > 255:
        return None
    ys, xs = _source_coords(H, h), _source_coords(W, w)
    if ys is None or xs is None:
        return None
    highest, lowest = float(top.max()), float(logits.min())  # min() is NaN if any logit is
    if not (math.isfinite(highest) and math.isfinite(lowest)):
        return None
    amax = max(abs(highest), abs(lowest))
    y0, y1, fy, y_whole = ys
    x0, x1, fx, x_whole = xs
    # Rounding: cv2's float32 interpolation and ours each lose a few ulps of the largest logit
    # (2**-18 is 32 ulps). A position error moves a sample by that error times the spread of the
    # values over its source pixels; at whole-number positions it may weigh in a third source pixel,
    # whose difference from the others is at most 4 * amax.
    weight_error = _position_error(h) + _position_error(w)
    slack = 2.0 ** -18 * max(amax, 1.0) + 4 * amax * (_position_error(h) * y_whole + _position_error(w) * x_whole)

    # Cell (y, x) holds source pixels (y..y+1, x..x+1), clamped at the last row and column; it is pure
    # when its four labels agree and each leads its runner-up by more than the rounding slack.
    lab = np.where(top - second > slack, low_labels, np.uint8(255))
    cell = np.where(lab[:, :-1] == lab[:, 1:], lab[:, :-1], np.uint8(255))
    cell = np.concatenate((cell, lab[:, -1:]), axis=1)
    cell[:-1] = np.where(cell[:-1] == cell[1:], cell[:-1], np.uint8(255))
    labels = cell.take(x0, axis=1).take(y0, axis=0)

    mixed = np.flatnonzero(labels == 255)
    if mixed.size == 0:
        return labels
    if mixed.size > labels.size * _MAX_MIXED_SHARE:
        return None  # noise rather than regions: the reference is as fast
    flat = logits.reshape(C, h * w)
    # Per mixed cell, the classes that can win somewhere in it: a class whose largest corner value is
    # below another's smallest (by more than rounding) loses everywhere in the cell.
    cells = np.flatnonzero(cell.ravel() == 255)
    step_x = (cells % w < w - 1).astype(np.intp)
    step_y = np.where(cells < (h - 1) * w, w, 0)
    quad = [flat.take(cells, axis=1), flat.take(cells + step_x, axis=1), flat.take(cells + step_y, axis=1),
            flat.take(cells + step_x + step_y, axis=1)]
    high = np.maximum(np.maximum(quad[0], quad[1]), np.maximum(quad[2], quad[3]))
    low = np.minimum(np.minimum(quad[0], quad[1]), np.minimum(quad[2], quad[3]))
    spread = high - low
    possible = high >= low.max(axis=0) - slack  # (C, cells)
    count = possible.sum(axis=0)
    where = np.empty(h * w, dtype=np.intp)
    where[cells] = np.arange(cells.size)

    Y, X = np.divmod(mixed, W)
    base = y0[Y] * w + x0[X]
    j = where[base]
    dx, dy = x1[X] - x0[X], (y1[Y] - y0[Y]) * w
    tx, ty = fx[X], fy[Y]
    pixel_count = count[j]
    pending = []
    # Cells with k candidates: k = 2 on most, up to a few; one vectorised pass per k.
    for k in np.unique(count):
        group = np.flatnonzero(count == k)
        candidates = np.nonzero(possible[:, group].T)[1].reshape(-1, k).T  # (k, cells in group), ascending
        slot = np.empty(cells.size, dtype=np.intp)
        slot[group] = np.arange(group.size)
        sel = np.flatnonzero(pixel_count == k)
        gj = slot[j[sel]]
        stx, sty = tx[sel], ty[sel]
        if k == 2:
            # Two candidates a < b: the sign of the sampled difference a - b decides (a on a tie).
            a, b = candidates[0], candidates[1]
            cg = cells[group]
            size = h * w
            gx, gy = step_x[group], step_y[group]
            d = [flat.take(a * size + cg + o) - flat.take(b * size + cg + o) for o in (0, gx, gy, gx + gy)]
            d_spread = np.maximum(np.maximum(d[0], d[1]), np.maximum(d[2], d[3])) - \
                np.minimum(np.minimum(d[0], d[1]), np.minimum(d[2], d[3]))
            d00, d01, d10, d11 = (arr.take(gj) for arr in d)
            upper = d00 + (d01 - d00) * stx
            diff = upper + ((d10 + (d11 - d10) * stx) - upper) * sty
            bound = d_spread.take(gj) * weight_error + slack
            labels.flat[mixed[sel]] = np.where(diff >= 0, a.take(gj), b.take(gj)).astype(np.uint8)
            undecided = np.flatnonzero(np.abs(diff) <= bound)
            if undecided.size:
                pix = mixed[sel][undecided]
                pending.append((np.concatenate((pix, pix)),
                                np.concatenate((a.take(gj[undecided]), b.take(gj[undecided])))))
            continue
        cj = j[sel]
        cls = candidates[:, gj]  # (k, pixels) class ids
        at = cls * (h * w) + base[sel]
        sdx, sdy = dx[sel], dy[sel]
        v00, v01 = flat.take(at), flat.take(at + sdx)
        v10, v11 = flat.take(at + sdy), flat.take(at + sdx + sdy)
        upper = v00 + (v01 - v00) * stx
        values = upper + ((v10 + (v11 - v10) * stx) - upper) * sty
        win = np.zeros(sel.size, dtype=np.intp)  # argmax over the k rows, first on ties
        best = values[0]
        for r in range(1, k):
            higher = values[r] > best
            win[higher] = r
            best = np.maximum(best, values[r])
        cols = np.arange(sel.size)
        # cv2's sample of (winner - other) can differ from ours by the position error times the
        # spread of that difference over the cell (at most the two classes' spreads), plus rounding.
        cell_spread = spread.take(cls * cells.size + cj)
        bound = (cell_spread + cell_spread[win, cols]) * weight_error + slack
        close = best - values <= bound
        close[win, cols] = False
        labels.flat[mixed[sel]] = cls[win, cols].astype(np.uint8)
        undecided = np.flatnonzero(close.any(axis=0))
        if undecided.size:
            running = close[:, undecided]
            running[win[undecided], np.arange(undecided.size)] = True
            slot_idx, col = np.nonzero(running)
            pending.append((mixed[sel][undecided][col], cls[:, undecided][slot_idx, col]))
    if pending:
        want_pixel = np.concatenate([p for p, _ in pending])
        if want_pixel.size > labels.size * _MAX_NEAR_TIE_SHARE:
            return None  # ties everywhere (constant or quantised logits): the reference is faster
        if not _settle_with_cv2(logits, labels, want_pixel, np.concatenate([c for _, c in pending]), ys, xs):
            return None
    return labels


def _settle_with_cv2(logits: np.ndarray, labels: np.ndarray, want_pixel: np.ndarray, want_class: np.ndarray,
                     ys: tuple, xs: tuple) -> bool:
    """Decide near-ties with cv2's own samples: per pixel, the reference's argmax over the classes asked.

    want_pixel, want_class: (pixel flat index, class id) pairs, every class that can still win there.
    A cv2.resize sample depends only on its 2x2 source pixels, so one resize of a scratch image can
    sample several classes at once, each at pixels whose source pixels no other class uses in that
    round; rounds go on until every pair is sampled (two on photos: each near-tie has two classes).
    False, leaving labels partly written, when that takes more than _MAX_SETTLE_ROUNDS resizes.
    """
    C, h, w = logits.shape
    H, W = ys[0].size, xs[0].size
    flat = logits.reshape(C, h * w)
    Y, X = np.divmod(want_pixel, W)
    y0, y1, x0, x1 = ys[0][Y], ys[1][Y], xs[0][X], xs[1][X]
    quad = np.stack((y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1), axis=1)  # (requests, 4)
    sample = np.empty(want_pixel.size, dtype=np.float32)
    todo = np.arange(want_pixel.size)
    owner = np.empty(h * w, dtype=np.int16)
    for _ in range(_MAX_SETTLE_ROUNDS):
        if not todo.size:
            break
        # Each source pixel goes to the lowest class asking for it this round; a request is served
        # when it got all four of its source pixels (the lowest class asking always does).
        owner[quad[todo].ravel()] = C
        np.minimum.at(owner, quad[todo].ravel(), np.repeat(want_class[todo], 4).astype(np.int16))
        served = (owner[quad[todo]] == want_class[todo, None]).all(axis=1)
        done, todo = todo[served], todo[~served]
        scratch = np.zeros(h * w, dtype=np.float32)
        src = quad[done].ravel()
        scratch[src] = flat[np.repeat(want_class[done], 4), src]
        up = cv2.resize(scratch.reshape(h, w), (W, H), interpolation=cv2.INTER_LINEAR)
        sample[done] = up.ravel()[want_pixel[done]]
    if todo.size:
        return False  # crowded near-ties: the caller falls back to the reference
    # Per pixel, the highest sample wins, the lower class id on a tie, as in the reference.
    order = np.lexsort((want_class, -sample, want_pixel))
    first = np.ones(order.size, dtype=bool)
    first[1:] = want_pixel[order[1:]] != want_pixel[order[:-1]]
    labels.flat[want_pixel[order[first]]] = want_class[order[first]].astype(np.uint8)
    return True


# Past these the fast path gives way to the reference, which is then as fast or faster (module
# constants so that tests can lift them and drive adversarial logits through every branch).
_MAX_MIXED_SHARE = 1 / 4  # mixed samples, of all output pixels
_MAX_NEAR_TIE_SHARE = 1 / 64  # (pixel, class) pairs left to cv2, of all output pixels
_MAX_SETTLE_ROUNDS = 6  # scratch resizes for them
