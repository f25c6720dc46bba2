"""The retrain job: fine-tune the current model on every approved correction (plus an optional base dataset),
export and register the result as a candidate, then let the promotion gate decide whether it serves.

Photos of the evaluation set are never written to the training folder; a retried job resumes its run.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import select

from models.card import read_card
from models.images import decode_image, read_label_map
from models.taxonomy import Taxonomy
from service.jobs.context import JobContext, JobLost
from service.jobs.kinds import model_path
from service.jobs.promotion import in_eval_set, judge
from service.jobs.readiness import val_percent
from service.jobs.retrain_config import retrain_overrides, train_config
from service.store.corrections import CorrectionError
from service.store.export import export_approved
from service.store.models_registry import get_model, register_model
from service.store.queue import JobError
from service.store.tables import Correction
from training.dataset import scan_dataset, split_bucket

SUMMARY = ("epoch", "train_loss", "miou", "pixel_accuracy", "seconds")


def _approved_shas(store) -> set[str]:
    with store.session() as s:
        return set(s.scalars(select(Correction.image_sha256).where(Correction.status == "approved")))


def add_base_data(base: Path, dest: Path, taxonomy, skip_shas: set[str],
                  skip_val_percent: float | None = None) -> int:
    """Copy the base dataset into `dest` (masks mapped to the taxonomy's ids), except photos in `skip_shas`
    (evaluation photos must stay unseen; a corrected photo's correction supersedes its base mask) and the
    base's own val split (the promotion gate's fallback evaluation set: it must stay unseen too)."""
    folder = scan_dataset(base)
    lut = taxonomy.lut_for_labels(folder.labels, origin=str(base / "labels.txt"))
    added = 0
    for sample in folder.samples:
        if skip_val_percent is not None and split_bucket(sample.id) < skip_val_percent:
            continue
        data = sample.image.read_bytes()
        if hashlib.sha256(data).hexdigest() in skip_shas:
            continue
        stem = f"base-{sample.id}"
        (dest / "images" / f"{stem}{sample.image.suffix.lower()}").write_bytes(data)
        PILImage.fromarray(lut[read_label_map(sample.mask)]).save(dest / "masks" / f"{stem}.png")
        added += 1
    return added


def prepare_data(ctx, taxonomy, use_base: bool) -> tuple[Path, dict]:
    """The training folder: approved corrections outside the evaluation set [+ base data]. Built once per job
    (atomically) and reused by a retried attempt, so a resumed run sees the same photos."""
    store, settings = ctx.store, ctx.settings
    work = settings.work_dir / f"retrain-{ctx.job_id}"
    data = work / "train"
    info_path = work / "train.json"
    if info_path.is_file() and data.is_dir():
        return data, json.loads(info_path.read_text())
    percent = settings.eval_percent
    tmp = work / "train.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with store.session() as s:
        try:
            exported = export_approved(s, store.files, tmp, taxonomy, overwrite=True,
                                       include=lambda sha: not in_eval_set(sha, percent))
        except CorrectionError as exc:
            raise JobError(f"nothing to train on: {exc}") from None
    base = 0
    if use_base and settings.retrain_base_data is not None:
        ctx.progress(stage="adding base data")
        approved = _approved_shas(store)
        base = add_base_data(settings.retrain_base_data, tmp, taxonomy, approved, val_percent(store, settings))
    shutil.rmtree(data, ignore_errors=True)
    os.replace(tmp, data)
    info = {"corrections": exported.images, "base_images": base,
            "base_data": str(settings.retrain_base_data) if base else None}
    info_path.write_text(json.dumps(info))
    return data, info


def run_retrain(ctx: JobContext) -> dict:
    """The job handler. Its work folder is kept only for a resume: after a killed worker or a stop."""
    work = ctx.settings.work_dir / f"retrain-{ctx.job_id}"
    try:
        result = _retrain(ctx, work)
    except JobLost:
        raise  # the job was requeued: another worker may be using the folder now
    except Exception:
        shutil.rmtree(work, ignore_errors=True)  # failed or cancelled: nothing will resume from it
        raise
    shutil.rmtree(work, ignore_errors=True)  # the model is in the store; datasets and checkpoints can go
    return result


def _registered_before(ctx: JobContext) -> str | None:
    """The candidate an earlier attempt of this job registered before its worker was lost: a retry
    judges that one instead of exporting and registering a second copy of the same training run."""
    version = ctx.state.get("candidate")
    if not version:
        return None
    with ctx.store.session() as s:
        return version if get_model(s, version) is not None else None


def _retrain(ctx, work: Path) -> dict:
    from training.export import export_model  # torch: only in the worker, only for this job

    store, settings, params = ctx.store, ctx.settings, ctx.params
    parent, parent_dir = model_path(store, None)
    card = read_card(parent_dir, verify=True)
    taxonomy = Taxonomy.from_dict(card["taxonomy"])
    work.mkdir(parents=True, exist_ok=True)
    ctx.progress(stage="exporting corrections", parent=parent)
    data, info = prepare_data(ctx, taxonomy, params.get("use_base_data", True))
    tax_file = work / "taxonomy.json"
    tax_file.write_text(json.dumps(card["taxonomy"]))
    cfg = train_config(card, retrain_overrides(settings, params), tax_file)
    ctx.progress(stage="training", epoch=0, epochs=cfg.epochs, train_images=info["corrections"] + info["base_images"],
                 corrections=info["corrections"], base_images=info["base_images"])
    ctx.check()

    def on_epoch(record: dict) -> None:
        ctx.progress(stage="training", epoch=record["epoch"], epochs=record["epochs"],
                     train_loss=round(record["train_loss"], 4), val_miou=round(record["miou"], 4),
                     best_val_miou=round(record["best_miou"], 4))

    from training.train import train  # torch, as above

    run = work / "run"
    try:
        state = train(data, run, cfg, init_model=parent_dir, resume=True, log=ctx.log, on_epoch=on_epoch)
    except ValueError as exc:  # e.g. too few photos for a train/val split
        raise JobError(f"training could not start: {exc}") from None
    ctx.progress(stage="exporting model")
    photos = sorted((data / "images").iterdir())[:2]
    note = (f"fine-tuned from {parent} by job {ctx.job_id} on {info['corrections']} approved correction(s)"
            + (f" and {info['base_images']} base photo(s)" if info["base_images"] else ""))
    candidate = _registered_before(ctx)
    if candidate is None:
        model_dir = work / f"retrain-job{ctx.job_id}"
        export_model(run / "best", model_dir, parity_images=[decode_image(p) for p in photos], overwrite=True,
                     notes=note)
        with store.session() as s:
            candidate = register_model(s, settings.model_store_dir, model_dir, status="candidate",
                                       notes=note).version
    ctx.progress(stage="registered", candidate=candidate)
    result = {"parent": parent, "candidate": candidate, **info,
              "history": [{k: round(r[k], 4) if isinstance(r[k], float) else r[k] for k in SUMMARY}
                          for r in state["history"]]}
    if params.get("promote", True):
        result["promotion"] = judge(store, settings, candidate, work / "eval", job_id=ctx.job_id,
                                    progress=ctx.progress)
        ctx.progress(stage=result["promotion"]["decision"])
    else:
        ctx.progress(stage="done")
    return result

