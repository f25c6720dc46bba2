"""The one timing helper the benchmark scripts share: wall times of repeated calls, in milliseconds.

Scripts import it as `bench.timing` (each puts the repository root on sys.path), so it travels with
them to a GPU machine and into the tests that run them.
"""
from __future__ import annotations

import time
from collections.abc import Callable


def timed_ms(fn: Callable[[], object], repeats: int, warmup: bool = False) -> list[float]:
    """Wall time in ms of each of `repeats` calls of fn; with `warmup`, one uncounted call first."""
    if warmup:
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out
