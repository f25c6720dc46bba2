"""The batch_predict job: drafts for every photo of a folder under batch_root, or of an upload.

Each photo's mask and result are files in WORK/predictions-<job>/ (masks/, results/<index>.json) written as
it is drafted, and its progress is the job's (done, succeeded, failed, each failure with its reason), so a
job given back or lost resumes where it stopped; at the end coco.json and summary.csv cover every photo.
/v1/batches shows these jobs; the server drafts them with its own engine, `tailor worker` with its own.
"""
from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from service.drafting.batch import Photo, PhotoDraft, classes_of, draft_photos, write_summary
from service.drafting.engine import Engine
from service.drafting.photo_files import list_folder, output_stem, safe_name, unique_stems, write_atomic
from service.drafting.predictor import load_predictor
from service.jobs.context import JobContext
from service.jobs.kinds import model_path, upload_dir


def output_dir(settings, job_id: int) -> Path:
    return settings.work_dir / f"predictions-{job_id}"


def stage_upload(settings, files: Iterable[tuple[str, BinaryIO]]) -> tuple[str, int]:
    """Copy uploaded photos to WORK/uploads/<id>/ for a job to draft; returns (id, photo count).
    Blocking I/O: call it in a thread. The folder appears complete or not at all."""
    upload = uuid.uuid4().hex
    root = settings.work_dir / "uploads"
    staging = root / f".{upload}"
    staging.mkdir(parents=True)
    names, paths = [], []
    try:
        for i, (name, fileobj) in enumerate(files):
            dest = staging / f"{i:05d}_{safe_name(name)}"
            with open(dest, "wb") as out:
                shutil.copyfileobj(fileobj, out, 1 << 20)
            names.append(name)
            paths.append(dest.name)  # relative, so the folder can move
        write_atomic(staging / "manifest.json", json.dumps({"names": names, "paths": paths}))
        staging.rename(root / upload)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return upload, len(names)


def job_photos(settings, params: dict) -> list[Photo]:
    """The photos of a batch_predict job, in the order they are numbered."""
    if "upload" in params:
        folder = upload_dir(settings, params["upload"])
        manifest = json.loads((folder / "manifest.json").read_text())
        paths = [folder / p for p in manifest["paths"]]
        stems = unique_stems([Path(n).stem for n in manifest["paths"]])
        return [Photo(path, name, stem) for path, name, stem in zip(paths, manifest["names"], stems)]
    found = list_folder(settings.batch_root, params["folder"], settings.max_batch_files)
    stems = unique_stems([output_stem(Path(rel)) for rel, _ in found])
    return [Photo(path, rel, stem) for (rel, path), stem in zip(found, stems)]


def load_results(settings, job_id: int) -> list[PhotoDraft]:
    """The photos drafted so far, by index."""
    folder = output_dir(settings, job_id) / "results"
    return [PhotoDraft(**json.loads(f.read_text())) for f in sorted(folder.glob("*.json"))]


def run_batch_predict(ctx: JobContext, engine: Engine | None = None, metrics=None) -> dict:
    """The job handler. `engine`: the server's own, used unless the job names another model version."""
    settings, params = ctx.settings, ctx.params
    photos = job_photos(settings, params)
    if engine is not None and params.get("version") in (None, engine.predictor.version):
        version, own = engine.predictor.version, None
    else:
        version, path = model_path(ctx.store, params.get("version"))
        ctx.progress(stage="loading model", version=version, total=len(photos))
        engine = own = Engine(load_predictor(path, settings), settings)
    out = output_dir(settings, ctx.job_id)
    (out / "results").mkdir(parents=True, exist_ok=True)
    # What an earlier attempt finished stays finished: its results are files, its failures in the progress.
    failures = list(ctx.state.get("failures", []))
    finished = {f["index"] for f in failures} | {int(f.stem) for f in (out / "results").glob("*.json")}
    succeeded = len(finished) - len(failures)
    ctx.progress(stage="predicting", version=version, total=len(photos), done=len(finished), succeeded=succeeded,
                 failed=len(failures), failures=failures)
    try:
        for index, result in draft_photos(engine, photos, out, formats=params.get("formats", ()),
                                          left_right=bool(params.get("left_right")), skip=finished.__contains__):
            if isinstance(result, str):
                failures.append({"index": index, "name": photos[index].name, "reason": result})
            else:
                write_atomic(out / "results" / f"{index:05d}.json", json.dumps(result.to_dict()))
                succeeded += 1
            if metrics is not None:
                metrics.jobs_images.labels("failed" if isinstance(result, str) else "ok").inc()
            # Every photo: /v1/batches shows the count, and a cancel or a shutdown is noticed here.
            ctx.progress(done=succeeded + len(failures), succeeded=succeeded, failed=len(failures),
                         failures=failures)
    finally:
        if own is not None:
            own.close()
    taxonomy = classes_of(engine.predictor.taxonomy, bool(params.get("left_right")))
    write_summary(out, load_results(settings, ctx.job_id), taxonomy, version)
    ctx.progress(stage="done")
    return {"version": version, **{k: params[k] for k in ("folder", "upload") if k in params}, "out": str(out),
            "images": len(photos), "written": succeeded,
            "failures": [{"path": str(photos[f["index"]].path), "reason": f["reason"]} for f in failures]}
