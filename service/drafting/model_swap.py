"""Serving from the model store: pick the model at startup, and hot-swap to another version on request.

A swap loads and warms the new Predictor in a worker thread, commits `current`, then replaces the engine's
reference (requests in flight finish on the old one); a poller follows `current` set by other processes.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

from service.drafting.engine import Engine
from service.drafting.predictor import Predictor, load_predictor
from service.store import Store
from service.store.db import store_from_settings
from service.store.models_registry import (ModelStoreError, check_activatable, current_version, get_model,
                                           register_model, set_current)

log = logging.getLogger("tailor.models")


def open_store_and_model(settings, preloaded: Predictor | None = None) -> tuple[Store, Predictor]:
    """Open (and migrate) the store, register the configured model, and return (store, predictor).

    Which model serves: a preloaded predictor (tests, benchmarks) if given; else model_dir if it was set
    explicitly (TAILOR_MODEL_DIR, --model); else the store's current version, seeded on first start
    with the bundled default model.
    """
    store = store_from_settings(settings)
    try:
        store.files.sweep_temps()
        store_dir = settings.model_store_dir
        with store.session() as s:
            source = preloaded.model_dir if preloaded is not None else settings.model_dir
            seeded = register_model(s, store_dir, source)
            explicit = preloaded is not None or "model_dir" in settings.model_fields_set
            cur = current_version(s)
            if cur is None or (explicit and cur != seeded.version):
                set_current(s, seeded.version, actor="startup",
                            reason="first start" if cur is None else f"model_dir set to {source}")
                cur = seeded.version
            path = get_model(s, cur).path
        predictor = preloaded or load_predictor(path, settings)
    except BaseException:
        store.close()
        raise
    return store, predictor


class ModelSwitcher:
    """Activate any registered version (promotion or rollback) while serving; one at a time."""

    def __init__(self, engine: Engine, store: Store, settings, loader=None):
        self.engine, self.store, self.settings = engine, store, settings
        self.loader = loader or (lambda path: load_predictor(path, settings))
        self._lock = threading.Lock()
        self._failed: dict[str, float] = {}  # version -> when it failed to load (not retried at every poll)

    def activate(self, version: str, actor: str | None = None, reason: str | None = None,
                 force: bool = False) -> dict:
        """Blocking (call it in a thread): load + warm the version, commit it as current, swap."""
        with self._lock:
            with self.store.session() as s:
                model = get_model(s, version)
                check_activatable(model, version, force, reason)
                path = model.path
            serving = self.engine.predictor
            if serving.version == version:
                with self.store.session() as s:
                    if current_version(s) != version:
                        set_current(s, version, actor, reason, force)
                return {"version": version, "previous": version, "changed": False, "warmup_s": 0.0}
            t0 = time.perf_counter()
            predictor = self.loader(path)  # verifies each file's sha256 against the card
            if predictor.version != version:
                raise ModelStoreError(f"{path} holds version {predictor.version}, not {version}")
            seconds = self.engine.warm_up(predictor) if self.settings.warmup else 0.0
            with self.store.session() as s:
                set_current(s, version, actor, reason, force)
            old = self.engine.swap(predictor)
            log.info("serving model %s (was %s); loaded in %.2f s, warm-up %.2f s", version, old.version,
                     time.perf_counter() - t0 - seconds, seconds)
            return {"version": version, "previous": old.version, "changed": True, "warmup_s": round(seconds, 3)}

    def sync(self, retry_after_s: float = 300.0) -> dict | None:
        """Serve the version the database names as current, if another process changed it (the worker's
        promotions, `tailor models activate`). Nothing is written: the database is already right."""
        with self._lock:  # after an API activation, which commits before it swaps, this finds nothing to do
            with self.store.session() as s:
                version = current_version(s)
                model = get_model(s, version) if version else None
            serving = self.engine.predictor
            if model is None or serving.version == version:
                return None
            if time.monotonic() - self._failed.get(version, -1e9) < retry_after_s:
                return None
            t0 = time.perf_counter()
            try:
                predictor = self.loader(model.path)
                if predictor.version != version:
                    raise ModelStoreError(f"{model.path} holds version {predictor.version}, not {version}")
                seconds = self.engine.warm_up(predictor) if self.settings.warmup else 0.0
            except Exception:
                self._failed[version] = time.monotonic()
                log.exception("current model %s (set in the database) cannot be loaded; still serving %s",
                              version, serving.version)
                return None
            old = self.engine.swap(predictor)
            log.info("serving model %s (was %s), made current elsewhere; loaded in %.2f s", version, old.version,
                     time.perf_counter() - t0)
            return {"version": version, "previous": old.version, "changed": True, "warmup_s": round(seconds, 3)}


async def follow_current(switcher: ModelSwitcher, interval_s: float) -> None:
    """The server's poller: every interval, hot-swap to the database's current model if it changed."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(switcher.sync)
        except Exception:  # a database hiccup must not end the poller
            log.exception("checking the current model failed")
