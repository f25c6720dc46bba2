"""The job kinds: their parameters, checked when a job is queued (a bad one fails now, not an hour later in
the worker), where a job's model comes from, and the evaluate handler. batch_predict's handler is in
batch_predict.py, retrain's in retrain.py.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from models.card import read_card
from models.taxonomy import Taxonomy
from service.drafting.errors import FolderRefused
from service.drafting.photo_files import list_folder
from service.formats import UnknownFormatError, parse_formats
from service.jobs.promotion import export_eval_set, score
from service.jobs.retrain_config import RetrainConfigError, check_retrain_config
from service.store.models_registry import current_version, get_model
from service.store.queue import JobError
from service.store.tables import JOB_KINDS

# name -> (type, required); anything else in params is refused, so a typo cannot be silently ignored.
PARAMS: dict[str, dict[str, tuple[type | tuple, bool]]] = {
    "retrain": {"epochs": (int, False), "lr": (float, False), "promote": (bool, False), "use_base_data": (bool, False)},
    "evaluate": {"version": (str, False), "folder": (str, False)},
    # Exactly one of folder (under batch_root) or upload (photos staged by POST /v1/batches).
    "batch_predict": {"folder": (str, False), "upload": (str, False), "version": (str, False),
                      "left_right": (bool, False), "formats": (list, False)},
}
# Bounds: a retrain of a billion epochs or a version naming a path is refused when queued.
MAX_EPOCHS = 1000
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
MAX_FOLDER = 4096


def validate_params(kind: str, params: dict | None, settings, session=None) -> dict:
    """Check a job's params before it is queued (a bad one fails now, not an hour later in the worker).

    With a database `session`, a version must be in the model store, and a retrain's config is resolved
    against the current model's own, as the worker will."""
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
    if "epochs" in params and not 1 <= params["epochs"] <= MAX_EPOCHS:
        raise JobError(f"params.epochs must be between 1 and {MAX_EPOCHS}, got {params['epochs']}")
    if "lr" in params and not 0 < params["lr"] <= 1:
        raise JobError(f"params.lr must be in (0, 1], got {params['lr']}")
    if "version" in params:
        if not VERSION.fullmatch(params["version"]):
            raise JobError(f"params.version must be a model version name (letters, digits, '._+-', at most 100), "
                           f"got {params['version'][:120]!r}")
        if session is not None and get_model(session, params["version"]) is None:
            raise JobError(f"no model version {params['version']!r} in the store")
    for name in ("folder", "upload"):
        if name in params and (len(params[name]) > MAX_FOLDER or "\x00" in params[name]):
            raise JobError(f"params.{name} must be a path of at most {MAX_FOLDER} characters, without NUL")
    if kind == "retrain" and session is not None:
        try:
            check_retrain_config(session, settings, params)
        except RetrainConfigError as exc:
            raise JobError(str(exc)) from None
    if kind == "batch_predict" and ("folder" in params) == ("upload" in params):
        raise JobError("batch_predict needs params.folder (under batch_root) or params.upload, not both")
    if "folder" in params:
        folder_images(settings, params["folder"])  # exists, inside batch_root, holds images
    if "upload" in params:
        upload_dir(settings, params["upload"])
    if "formats" in params:
        try:
            params["formats"] = parse_formats(params["formats"])
        except UnknownFormatError as exc:
            raise JobError(str(exc)) from None
    return params


def folder_images(settings, folder: str) -> list[tuple[str, Path]]:
    try:
        return list_folder(settings.batch_root, folder, settings.max_batch_files)
    except FolderRefused as exc:
        raise JobError(str(exc)) from None


def upload_dir(settings, upload: str) -> Path:
    """The folder of photos staged for a batch (WORK/uploads/<id>), which must exist."""
    path = settings.work_dir / "uploads" / upload
    if "/" in upload or upload.startswith(".") or not (path / "manifest.json").is_file():
        raise JobError(f"no staged upload {upload!r}")
    return path


def model_path(store, version: str | None) -> tuple[str, Path]:
    with store.session() as s:
        version = version or current_version(s)
        row = get_model(s, version) if version else None
    if row is None:
        raise JobError(f"no model version {version!r} in the store")
    return version, Path(row.path)


def run_evaluate(ctx: JobContext) -> dict:
    """Score a version (default: the current one) on the evaluation set, or on a dataset under batch_root."""
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
