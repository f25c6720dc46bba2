"""A micro-batcher: concurrent single-image requests become few multi-image model calls (GPU efficiency).

One worker thread owns the model; it groups same-input-size images up to max_size, waiting at most
max_wait_ms for company. Callers get a concurrent.futures.Future (asyncio: asyncio.wrap_future).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class BatcherClosed(RuntimeError):
    """The batcher was shut down; the request was not run."""


@dataclass(eq=False)  # compared by identity: payloads (arrays) need not support ==
class _Item:
    payload: Any
    key: Hashable
    future: Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Group `submit(payload)` calls into `run_batch(list_of_payloads) -> list_of_results` calls.

    Only payloads with equal `key(payload)` share a call (for images: the model input size, so they
    stack into one tensor). Results keep their order; an exception from `run_batch` is delivered to
    every caller of that batch and the worker carries on.
    """

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], key: Callable[[Any], Hashable] = lambda p: None,
                 max_size: int = 1, max_wait_ms: float = 0.0, name: str = "tailor-batcher",
                 on_batch: Callable[[int, float], None] | None = None):
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run_batch, self.key = run_batch, key
        self.max_size, self.max_wait = max_size, max_wait_ms / 1000.0
        self.on_batch = on_batch  # (batch size, seconds in run_batch), e.g. for metrics
        self.batch_sizes: list[int] = []  # a short history, for tests and the benchmark
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch now running)."""
        with self._cond:
            return len(self._queue)

    def submit(self, payload: Any) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise BatcherClosed("the inference worker is shut down")
            self._queue.append(_Item(payload, self.key(payload), future))
            self._cond.notify_all()
        return future

    def __call__(self, payload: Any, timeout: float | None = None) -> Any:
        """Blocking convenience: submit and wait for the result."""
        return self.submit(payload).result(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting work, fail whatever is still queued, and stop the worker."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in pending:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(BatcherClosed("the inference worker shut down before this ran"))
        self._worker.join(timeout)

    def _take_batch(self) -> list[_Item] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._queue.popleft()
            batch = [first]
            deadline = first.queued_at + self.max_wait
            while len(batch) < self.max_size:
                # Take any same-size items already queued (others keep their place for the next call).
                for item in list(self._queue):
                    if item.key == first.key and len(batch) < self.max_size:
                        self._queue.remove(item)
                        batch.append(item)
                remaining = deadline - time.perf_counter()
                if len(batch) >= self.max_size or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            # Futures cancelled while waiting are dropped before spending model time on them.
            batch = [item for item in batch if item.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                results = self.run_batch([item.payload for item in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} inputs")
            except BaseException as exc:  # delivered to the callers; the worker must survive
                for item in batch:
                    item.future.set_exception(exc)
                continue
            elapsed = time.perf_counter() - t0
            self.batch_sizes = (self.batch_sizes + [len(batch)])[-1000:]
            if self.on_batch:
                try:
                    self.on_batch(len(batch), elapsed)
                except Exception:  # metrics must never break inference
                    pass
            for item, result in zip(batch, results):
                item.future.set_result(result)
