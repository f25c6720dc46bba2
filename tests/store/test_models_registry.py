"""The model store and hot swaps: versions are copied and never edited, `current` survives restarts, and
activating another version under concurrent /v1/predict traffic fails no request.

The second version is the tiny model the training tests export (real weights, other outputs).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.conftest import DEFAULT_MODEL, SlowBackend, make_settings, post_image
from fastapi.testclient import TestClient

from models.card import read_card
from service.api.app import create_app
from service.drafting.predictor import Predictor
from service.store.models_registry import ModelStoreError, activations, register_model

DEFAULT_VERSION = read_card(DEFAULT_MODEL)["version"]


@pytest.fixture(scope="module")
def small_photo(photos):
    import io

    from PIL import Image

    with Image.open(photos[0]) as im:  # a real photo at a third of its size: quick to predict
        buf = io.BytesIO()
        im.resize((im.width // 3, im.height // 3)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_registry_copies_verifies_and_never_replaces(tmp_path, tiny_model):
    from service.store import open_store

    store = open_store(tmp_path / "data")
    with store.session() as s:
        row = register_model(s, tmp_path / "store", tiny_model)
        again = register_model(s, tmp_path / "store", tiny_model)  # idempotent
        assert again.version == row.version and row.path == str((tmp_path / "store" / row.version).resolve())
        card = read_card(row.path, verify=True)
        assert row.parent is None and row.metrics == card["metrics"] and row.taxonomy == "fashion-13@1"
        for f in (tmp_path / "store" / row.version).iterdir():
            assert not f.stat().st_mode & 0o222, f"{f} is writable"
        # Same version, other files: refused, the stored copy untouched.
        altered = tmp_path / "altered"
        altered.mkdir()
        for f in tiny_model.iterdir():
            (altered / f.name).write_bytes(f.read_bytes())
        (altered / "model.onnx").write_bytes(b"x" + (altered / "model.onnx").read_bytes())
        from models.card import write_card

        write_card(altered, read_card(altered))
        with pytest.raises(ModelStoreError, match="different files"):
            register_model(s, tmp_path / "store", altered)
        read_card(row.path, verify=True)
    store.close()


def test_first_start_seeds_current_and_restart_keeps_an_activation(tmp_path, tiny_model, small_photo):
    settings = make_settings(tmp_path, warmup=False)
    with TestClient(create_app(settings)) as c:
        listing = c.get("/v1/models").json()
        assert listing["current"] == listing["serving"] == DEFAULT_VERSION
        with c.app.state.store.session() as s:
            tiny = register_model(s, settings.model_store_dir, tiny_model, status="candidate").version
        r = c.post(f"/v1/models/{tiny}/activate", json={"reason": "better on shoes"})
        assert r.status_code == 200 and r.json()["previous"] == DEFAULT_VERSION, r.text
        assert post_image(c, small_photo).json()["model_version"] == tiny
        models = {m["version"]: m for m in c.get("/v1/models").json()["versions"]}
        assert models[tiny]["current"] and models[tiny]["status"] == "available"
        assert c.post("/v1/models/nope/activate").status_code == 404
    # Restart without naming a model: the store's current version serves, from the store's copy.
    from service.settings import Settings

    plain = Settings(_env_file=None, data_dir=tmp_path / "data", threads=1, warmup=False)
    with TestClient(create_app(plain)) as c:
        info = c.get("/v1/models/current").json()
        assert info["version"] == tiny and info["activated_at"]
        assert c.app.state.engine.predictor.model_dir.is_relative_to(settings.model_store_dir.resolve())
        # Rollback is one call.
        assert c.post(f"/v1/models/{DEFAULT_VERSION}/activate").json()["version"] == DEFAULT_VERSION
        assert post_image(c, small_photo).json()["model_version"] == DEFAULT_VERSION
        with c.app.state.store.session() as s:
            history = [(a.version, a.previous) for a in activations(s)]
        assert history[:2] == [(DEFAULT_VERSION, tiny), (tiny, DEFAULT_VERSION)]


def test_altered_version_is_refused_and_serving_continues(tmp_path, tiny_model, small_photo, predictor):
    settings = make_settings(tmp_path, warmup=False)
    with TestClient(create_app(settings, predictor=predictor)) as c:
        with c.app.state.store.session() as s:
            row = register_model(s, settings.model_store_dir, tiny_model)
        onnx = settings.model_store_dir.resolve() / row.version / "model.onnx"
        onnx.chmod(0o644)
        onnx.write_bytes(onnx.read_bytes()[:-10])
        r = c.post(f"/v1/models/{row.version}/activate")
        assert r.status_code == 409 and "sha256" in r.json()["detail"]
        assert c.get("/v1/models").json()["current"] == DEFAULT_VERSION
        assert post_image(c, small_photo).json()["model_version"] == DEFAULT_VERSION


def test_hot_swap_under_concurrent_requests(tmp_path, tiny_model, predictor, small_photo):
    # The serving model is slowed so that requests are surely in flight at the moment of the swap.
    slow = Predictor(DEFAULT_MODEL, backend_instance=SlowBackend(predictor.backend, 0.15), verify=False)
    settings = make_settings(tmp_path, warmup=False, max_in_flight=16)
    with TestClient(create_app(settings, predictor=slow), raise_server_exceptions=False) as c:
        with c.app.state.store.session() as s:
            tiny = register_model(s, settings.model_store_dir, tiny_model).version
        results: list[tuple[float, float, int, str | None]] = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                t0 = time.monotonic()
                r = post_image(c, small_photo)
                version = r.json().get("model_version") if r.status_code == 200 else None
                results.append((t0, time.monotonic(), r.status_code, version or r.text))

        with ThreadPoolExecutor(3) as pool:
            workers = [pool.submit(hammer) for _ in range(3)]
            time.sleep(0.5)
            assert slow.backend.calls > 0
            t_call = time.monotonic()
            r = c.post(f"/v1/models/{tiny}/activate")
            t_done = time.monotonic()
            time.sleep(0.5)
            stop.set()
            for w in workers:
                w.result()
        assert r.status_code == 200, r.text
        codes = [code for _, _, code, _ in results]
        assert codes and set(codes) == {200}, [x for x in results if x[2] != 200][:3]
        assert {v for *_, v in results} <= {DEFAULT_VERSION, tiny}
        # Requests still running when the swap was asked for finished on the old model...
        assert any(v == DEFAULT_VERSION and end > t_call for _, end, _, v in results)
        # ...and every request started after the swap completed was served by the new one.
        after = [v for start, _, _, v in results if start > t_done]
        assert after and set(after) == {tiny}


def test_a_rejected_version_goes_live_only_when_forced_with_a_reason(tmp_path, tiny_model, small_photo):
    from service.store.models_registry import set_status

    settings = make_settings(tmp_path, warmup=False)
    with TestClient(create_app(settings)) as c:
        with c.app.state.store.session() as s:
            tiny = register_model(s, settings.model_store_dir, tiny_model, status="candidate").version
            set_status(s, tiny, "rejected", notes="gate: shoes IoU dropped")
        r = c.post(f"/v1/models/{tiny}/activate", json={"reason": "ship it"})
        assert r.status_code == 409 and "force" in r.json()["detail"]
        r = c.post(f"/v1/models/{tiny}/activate", json={"force": True})
        assert r.status_code == 409 and "reason" in r.json()["detail"]
        assert post_image(c, small_photo).json()["model_version"] == DEFAULT_VERSION
        r = c.post(f"/v1/models/{tiny}/activate", json={"force": True, "reason": "customer wants the new shoes"})
        assert r.status_code == 200, r.text
        assert post_image(c, small_photo).json()["model_version"] == tiny
        with c.app.state.store.session() as s:
            last = activations(s)[0]
        assert last.version == tiny and "forced" in last.reason and "customer wants" in last.reason
        assert {m["version"]: m for m in c.get("/v1/models").json()["versions"]}[tiny]["status"] == "available"
