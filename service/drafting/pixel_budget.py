"""A bound on the pixels that photos in work hold at once, which is what bounds serving memory.

A prediction's masks, confidence and encodings grow with the photo: about 15 MB per megapixel at their
peak, so four 37-megapixel photos at once took 1.4 GB of serving memory (bench/bench_decode.py) where
four CCP photos take a few tens of MB.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class PixelBudget:
    """A counting semaphore weighted by pixels, first come first served; a photo larger than the whole
    budget runs alone (it waits until nothing else is held, and nothing enters beside it)."""

    def __init__(self, total: int, on_change: Callable[[int], None] | None = None):
        if total < 1:
            raise ValueError(f"pixel budget must be positive, got {total}")
        self.total, self.used, self.peak = total, 0, 0
        self._on_change = on_change
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._tickets = itertools.count()

    def acquire(self, pixels: int) -> None:
        """Block until `pixels` fit (or nothing else is held) and it is this caller's turn."""
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            try:
                self._cond.wait_for(lambda: self._queue[0] == ticket and
                                    (self.used == 0 or self.used + pixels <= self.total))
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit too
            self.used += pixels
            self.peak = max(self.peak, self.used)
            used = self.used
        if self._on_change:
            self._on_change(used)

    def release(self, pixels: int) -> None:
        with self._cond:
            self.used -= pixels
            used = self.used
            self._cond.notify_all()
        if self._on_change:
            self._on_change(used)

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        self.acquire(pixels)
        try:
            yield
        finally:
            self.release(pixels)
