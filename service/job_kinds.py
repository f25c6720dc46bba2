"""The job kinds: their parameters (checked when queued) and the evaluate and batch_predict handlers.

batch_predict runs the offline path (`tailor predict`) on a folder under batch_root in the worker process,
for bulk pre-annotation that should not load the server; interactive batches stay on /v1/batches.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from service.drafting.errors import FolderRefused
from service.drafting.photo_files import list_folder
from service.store.models_registry import current_version, get_model
from service.store.queue import JobError
from service.store.tables import JOB_KINDS

# name -> (type, required); anything else in params is refused, so a typo cannot be silently ignored.
PARAMS: dict[str, dict[str, tuple[type | tuple, bool]]] = {
    "retrain": {"epochs": (int, False), "lr": (float, False), "promote": (bool, False), "use_base_data": (bool, False)},
    "evaluate": {"version": (str, False), "folder": (str, False)},
    "batch_predict": {"folder": (str, True), "version": (str, False), "left_right": (bool, False)},
}


def validate_params(kind: str, params: dict | None, settings) -> dict:
    """Check a job's params before it is queued (a bad one fails now, not an hour later in the worker)."""
    if kind not in JOB_KINDS:
        raise JobError(f"kind must be one of {list(JOB_KINDS)}, got {kind!r}")
    params = dict(params or {})
    spec = PARAMS[kind]
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise JobError(f"{kind} takes params {sorted(spec)}; unknown: {unknown}")
    for name, (typ, required) in spec.items():
        if name not in params:
            if required:
                raise JobError(f"{kind} needs params.{name}")
            continue
        value = params[name]
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise JobError(f"params.{name} must be {typ.__name__}, got {value!r}")
        params[name] = value
    if params.get("epochs") is not None and params["epochs"] < 1:
        raise JobError("params.epochs must be at least 1")
    if params.get("lr") is not None and params["lr"] <= 0:
        raise JobError("params.lr must be positive")
    if "folder" in params:
        folder_images(settings, params["folder"])  # exists, inside batch_root, holds images
    return params


def folder_images(settings, folder: str) -> list[tuple[str, Path]]:
    try:
        return list_folder(settings.batch_root, folder, settings.max_batch_files)
    except FolderRefused as exc:
        raise JobError(str(exc)) from None


def model_path(store, version: str | None) -> tuple[str, Path]:
    with store.session() as s:
        version = version or current_version(s)
        row = get_model(s, version) if version else None
    if row is None:
        raise JobError(f"no model version {version!r} in the store")
    return version, Path(row.path)


def run_evaluate(ctx) -> dict:
    """Score a version (default: the current one) on the evaluation set, or on a dataset under batch_root."""
    from models.card import read_card
    from models.taxonomy import Taxonomy
    from service.promotion import export_eval_set, score

    store, settings = ctx.store, ctx.settings
    version, path = model_path(store, ctx.params.get("version"))
    work = settings.work_dir / f"evaluate-{ctx.job_id}"
    try:
        if ctx.params.get("folder"):
            folder_images(settings, ctx.params["folder"])
            data, what = (settings.batch_root / ctx.params["folder"]).resolve(), ctx.params["folder"]
        else:
            ctx.progress(stage="exporting the evaluation set")
            data, what = work / "eval", "evaluation set"
            taxonomy = Taxonomy.from_dict(read_card(path)["taxonomy"])
            if not export_eval_set(store, data, taxonomy, settings.eval_percent):
                raise JobError("the evaluation set is empty (no approved photo falls in it yet)")
        ctx.progress(stage="evaluating", version=version)
        metrics = score(path, data, settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ctx.progress(stage="done")
    return {"version": version, "data": what, **metrics}


def run_batch_predict(ctx) -> dict:
    """Drafts for every photo of a folder: WORK/predictions-<job>/ masks/, coco.json, summary.csv."""
    from service.drafting.batch import predict_files
    from service.drafting.engine import Engine
    from service.drafting.predictor import load_predictor

    settings = ctx.settings
    found = folder_images(settings, ctx.params["folder"])
    version, path = model_path(ctx.store, ctx.params.get("version"))
    out = settings.work_dir / f"predictions-{ctx.job_id}"
    ctx.progress(stage="loading model", version=version, done=0, total=len(found))
    engine = Engine(load_predictor(path, settings), settings)
    done, last = 0, 0.0

    def step(_path, _error) -> None:
        nonlocal done, last
        done += 1
        ctx.check()
        if time.monotonic() - last > 1.0 or done == len(found):  # one write a second at most
            last = time.monotonic()
            ctx.progress(stage="predicting", done=done)

    stems = [(p, "__".join(Path(rel).with_suffix("").parts)) for rel, p in found]
    try:
        report = predict_files(engine, stems, out, on_step=step, left_right=bool(ctx.params.get("left_right")))
    finally:
        engine.close()
    return {"version": version, "folder": ctx.params["folder"], "out": str(out), "images": len(found),
            "written": len(report.written), "failures": [{"path": p, "reason": r} for p, r in report.failures]}
