"""Serving from the model store: pick the model at startup, and hot-swap to another version on request.

A swap loads and warms the new Predictor completely (in a worker thread), commits `current` in the
database, then replaces the engine's predictor reference; requests already running finish on the old one.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from service.store import Store
from service.store.db import store_from_settings
from service.store.models_registry import ModelStoreError, current_version, get_model, register_model, set_current

log = logging.getLogger("tailor.models")


def open_store_and_model(settings, preloaded=None):
    """Open (and migrate) the store, register the configured model, and return (store, predictor).

    Which model serves: a preloaded predictor (tests, benchmarks) if given; else model_dir if it was set
    explicitly (TAILOR_MODEL_DIR, --model); else the store's current version, seeded on first start
    with the bundled default model.
    """
    from service.inference import Predictor

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
        predictor = preloaded or Predictor(path, settings.backend, settings.threads)
    except BaseException:
        store.close()
        raise
    return store, predictor


def warm(predictor) -> float:
    """One inference on a photo-sized synthetic image, straight on the predictor (not through the queue)."""
    t0 = time.perf_counter()
    predictor.predict(np.random.default_rng(0).integers(0, 256, size=(832, 550, 3), dtype=np.uint8))
    return time.perf_counter() - t0


class ModelSwitcher:
    """Activate any registered version (promotion or rollback) while serving; one at a time."""

    def __init__(self, engine, store: Store, settings, loader=None):
        from service.inference import Predictor

        self.engine, self.store, self.settings = engine, store, settings
        self.loader = loader or (lambda path: Predictor(path, settings.backend, settings.threads))
        self._lock = threading.Lock()

    def activate(self, version: str, actor: str | None = None, reason: str | None = None) -> dict:
        """Blocking (call it in a thread): load + warm the version, commit it as current, swap."""
        with self._lock:
            with self.store.session() as s:
                model = get_model(s, version)
                if model is None:
                    raise ModelStoreError(f"no model version {version!r} in the store")
                if model.status == "rejected":
                    raise ModelStoreError(f"model version {version} was rejected; it cannot be activated")
                path = model.path
            serving = self.engine.predictor
            if serving.version == version:
                with self.store.session() as s:
                    if current_version(s) != version:
                        set_current(s, version, actor, reason)
                return {"version": version, "previous": version, "changed": False, "warmup_s": 0.0}
            t0 = time.perf_counter()
            predictor = self.loader(path)  # verifies each file's sha256 against the card
            if predictor.version != version:
                raise ModelStoreError(f"{path} holds version {predictor.version}, not {version}")
            seconds = warm(predictor) if self.settings.warmup else 0.0
            with self.store.session() as s:
                set_current(s, version, actor, reason)
            old = self.engine.swap(predictor)
            log.info("serving model %s (was %s); loaded in %.2f s, warm-up %.2f s", version, old.version,
                     time.perf_counter() - t0 - seconds, seconds)
            return {"version": version, "previous": old.version, "changed": True, "warmup_s": round(seconds, 3)}
