"""Retraining and the promotion gate with the tiny model: a worse candidate is refused, one that is not worse
is promoted, both scores and the decision are recorded, and the evaluation set never reaches training.

The corrections are the tiny model's own predictions, so the serving (tiny) model scores exactly 1.0.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from service.jobs.promotion import decide, eval_bucket, export_eval_set, in_eval_set, judge
from service.jobs.worker import Worker
from service.store import queue
from service.store.models_registry import current_version, get_model, register_model
from service.store.tables import columns
from training.dataset import split_bucket
from tests.jobs.conftest import approve_predictions, job_settings, seed_model
from models.taxonomy import load_taxonomy


@pytest.fixture
def world(tmp_path, tiny_model, tiny_data):
    """A store serving the tiny model, with its predictions on the 16 tiny photos approved as corrections."""
    from service.store.db import store_from_settings

    settings = job_settings(tmp_path, eval_percent=40.0, promotion_min_eval_images=2,
                            retrain_config={"epochs": 1, "val_percent": 30.0, "lr": 1e-4})
    store = store_from_settings(settings)
    version = seed_model(store, settings, tiny_model)
    shas = approve_predictions(store, tiny_model, sorted((tiny_data / "images").glob("*.jpg")))
    yield settings, store, version, shas
    store.close()


def _export(run_dir, out, photos_dir):
    from models.images import decode_image
    from training.export import export_model

    photo = sorted(photos_dir.glob("*.jpg"))[0]
    return export_model(run_dir / "best", out, parity_images=[decode_image(photo)])


def test_eval_set_membership_is_a_stable_hash():
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    share = sum(in_eval_set(s, 20.0) for s in shas) / len(shas)
    assert 0.17 < share < 0.23
    assert [eval_bucket(s) for s in shas[:50]] == [eval_bucket(s.upper()) for s in shas[:50]]


def test_gate_decisions():
    base = {"miou": 0.60, "per_class": {"shoes": 0.50, "pants": 0.70, "skirt": None}}
    up = {"miou": 0.62, "per_class": {"shoes": 0.49, "pants": 0.75, "skirt": None}}
    args = {"guarded": ["shoes", "pants", "skirt"], "max_class_drop": 0.02, "images": 20, "min_images": 10}
    assert decide(base, up, **args).promote  # shoes dropped 0.01, within the margin; skirt absent
    shoes_down = {"miou": 0.65, "per_class": {"shoes": 0.45, "pants": 0.80, "skirt": None}}
    verdict = decide(base, shoes_down, **args)
    assert not verdict.promote and "shoes" in verdict.reason  # better overall, but a guarded class fell
    assert decide(base, shoes_down, **{**args, "guarded": ["pants"]}).promote
    assert not decide(base, {**up, "miou": 0.599}, **args).promote  # mIoU may not drop at all
    assert "below promotion_min_eval_images" in decide(base, up, **{**args, "images": 9}).reason


def test_gate_refuses_a_worse_candidate_and_promotes_an_equal_one(world, tiny_run, tiny_data, tmp_path):
    from training.config import TrainConfig
    from training.train import train
    from tests.conftest import TINY_CONFIG

    settings, store, tiny_version, shas = world
    # One optimiser step from random weights: a candidate that is surely worse.
    cfg = TrainConfig.from_dict({**TINY_CONFIG, "epochs": 1, "max_steps": 1})
    train(tiny_data, tmp_path / "bad-run", cfg, log=lambda *_: None)
    bad = _export(tmp_path / "bad-run", tmp_path / "bad", tiny_data / "images")
    same = _export(tiny_run, tmp_path / "same", tiny_data / "images")  # the tiny weights, a new version
    with store.session() as s:
        register_model(s, settings.model_store_dir, tmp_path / "bad", status="candidate")
        register_model(s, settings.model_store_dir, tmp_path / "same", status="candidate")

    refused = judge(store, settings, bad["version"], tmp_path / "eval1")
    assert refused["decision"] == "refused" and "mIoU would drop" in refused["reason"]
    assert refused["baseline_metrics"]["miou"] == pytest.approx(1.0)
    assert refused["candidate_metrics"]["miou"] < 0.9
    assert refused["eval_images"] == sum(in_eval_set(s, settings.eval_percent) for s in shas) >= 2
    with store.session() as s:
        assert current_version(s) == tiny_version and get_model(s, bad["version"]).status == "rejected"

    promoted = judge(store, settings, same["version"], tmp_path / "eval2")
    assert promoted["decision"] == "promoted", promoted["reason"]
    assert promoted["candidate_metrics"]["miou"] == pytest.approx(promoted["baseline_metrics"]["miou"])
    with store.session() as s:
        assert current_version(s) == same["version"]
        recorded = [columns(p) for p in queue.list_promotions(s)]
    assert [p["decision"] for p in recorded] == ["promoted", "refused"]
    assert recorded[0]["eval_fingerprint"] == recorded[1]["eval_fingerprint"]  # the same fixed set


def test_retrain_job_end_to_end(world):
    settings, store, tiny_version, shas = world
    with store.session() as s:
        job_id = queue.enqueue_retrain(s, reason="test")[0].id
    seen = []
    from service.jobs.retrain import prepare_data

    def spy(ctx):  # the real handler, after checking the training folder it will use
        data, info = prepare_data(ctx, load_taxonomy("fashion-13"), True)
        seen.append(json.loads((data / "manifest.json").read_text()))
        from service.jobs.retrain import run_retrain
        return run_retrain(ctx)

    Worker(store, settings, "w", handlers={"retrain": spy}).run_forever(idle_exit=True)
    with store.session() as s:
        job = queue.get_job(s, job_id)
        assert job.status == "succeeded", job.error
        cand = get_model(s, job.result["candidate"])
        serving = current_version(s)
    trained = {item["image_sha256"] for item in seen[0]["items"]}
    held_out = {sha for sha in shas if in_eval_set(sha, settings.eval_percent)}
    assert trained and held_out and not trained & held_out and trained | held_out == set(shas)
    assert job.result["corrections"] == len(trained) and job.result["parent"] == tiny_version
    assert job.progress["epoch"] == job.progress["epochs"] == 1
    assert {"train_loss", "val_miou", "best_val_miou"} <= set(job.progress)
    assert job.result["history"][0]["epoch"] == 1
    promotion = job.result["promotion"]
    assert promotion["eval_images"] == len(held_out) and promotion["baseline"] == tiny_version
    assert cand.parent == tiny_version
    assert (serving == cand.version) == (promotion["decision"] == "promoted")
    assert not (settings.work_dir / f"retrain-{job_id}").exists()


def test_eval_set_keeps_its_members_as_corrections_arrive(world, ccp, tmp_path):
    from tests.conftest import make_small_copy

    settings, store, tiny_version, shas = world
    tax = load_taxonomy("fashion-13")
    before = export_eval_set(store, tmp_path / "e1", tax, settings.eval_percent)
    ids = sorted(p.stem for p in (ccp / "images").glob("*.jpg"))[100:106]  # not among the tiny 16
    more = make_small_copy(ccp, tmp_path / "more", ids)
    with store.session() as s:
        path = get_model(s, tiny_version).path
    approve_predictions(store, path, sorted((more / "images").glob("*.jpg")))
    after = export_eval_set(store, tmp_path / "e2", tax, settings.eval_percent)
    ids = lambda d: {i["image_sha256"] for i in json.loads((d / "manifest.json").read_text())["items"]}
    assert ids(tmp_path / "e1") <= ids(tmp_path / "e2") and after >= before


def test_a_retry_after_registering_reuses_the_candidate(world, monkeypatch):
    """The worker is lost right after registering: the retried job judges that candidate without
    exporting the model again (an export's card could differ, making a second candidate)."""
    import training.export

    from service.jobs.context import JobLost
    from service.jobs.retrain import run_retrain
    from service.store.models_registry import list_models

    settings, store, tiny_version, _ = world
    with store.session() as s:
        job_id = queue.enqueue_retrain(s, reason="test")[0].id

    def lost_after_registering(ctx):
        real = ctx.progress

        def progress(**fields):
            real(**fields)
            if fields.get("stage") == "registered" and ctx.attempt == 1:
                raise JobLost("simulated: the worker died right after registering")

        ctx.progress = progress
        return run_retrain(ctx)

    Worker(store, settings, "w1", handlers={"retrain": lost_after_registering}).run_forever(idle_exit=True)
    with store.session() as s:
        first = queue.get_job(s, job_id)
        assert first.status == "running" and first.progress["stage"] == "registered"
        registered = first.progress["candidate"]
        assert queue.recover(s, worker="w1") == [(job_id, "queued")]
    exports = []
    real_export = training.export.export_model
    monkeypatch.setattr(training.export, "export_model", lambda *a, **k: exports.append(a) or real_export(*a, **k))
    Worker(store, settings, "w2", handlers={"retrain": lost_after_registering}).run_forever(idle_exit=True)
    with store.session() as s:
        job = queue.get_job(s, job_id)
        assert job.status == "succeeded", job.error
        assert job.result["candidate"] == registered and exports == []
        assert sorted(m.version for m in list_models(s)) == sorted([tiny_version, registered])


def test_a_too_small_evaluation_set_is_scored_on_the_fallback_set(world, tiny_run, tiny_data, tmp_path):
    from service.jobs.readiness import retrain_readiness

    from training.config import TrainConfig
    from training.train import train
    from tests.conftest import TINY_CONFIG

    settings, store, tiny_version, shas = world
    cfg = TrainConfig.from_dict({**TINY_CONFIG, "epochs": 1, "max_steps": 1})
    train(tiny_data, tmp_path / "bad-run", cfg, log=lambda *_: None)
    same = _export(tmp_path / "bad-run", tmp_path / "bad", tiny_data / "images")  # surely worse
    with store.session() as s:
        register_model(s, settings.model_store_dir, tmp_path / "bad", status="candidate")
    tiny_eval = settings.model_copy(update={"eval_percent": 0.01, "promotion_min_eval_images": 3})
    assert sum(in_eval_set(s, 0.01) for s in shas) == 0
    # No fallback set: refused as before, now saying which settings would give one.
    empty = judge(store, tiny_eval, same["version"], tmp_path / "eval0")
    assert empty["decision"] == "refused" and "TAILOR_PROMOTION_EVAL_DATA" in empty["reason"]
    # The base data's val split (30% here, by the retrain config), which retrains leave out.
    base = tiny_eval.model_copy(update={"retrain_base_data": tiny_data})
    verdict = judge(store, base, same["version"], tmp_path / "eval1")
    val = [p for p in (tiny_data / "images").glob("*.jpg") if split_bucket(p.stem) < 30.0]
    assert verdict["decision"] == "refused" and "mIoU would drop" in verdict["reason"]
    assert verdict["baseline_metrics"]["miou"] < 1.0  # scored on CCP's own masks, not the tiny model's drafts
    assert verdict["eval_images"] == len(val) >= 3 and "fallback set" in verdict["reason"]
    # 16 approved photos, none held out; the base photos outside its val split join the training folder.
    ready = retrain_readiness(store, base)
    assert ready.ok and (ready.approved, ready.evaluation, ready.train + ready.val) == (16, 0, 16 + 16 - len(val))
    assert "approve 1 more" in retrain_readiness(store, base.model_copy(update={"retrain_min_approved": 17})).reason
