"""Batch pre-annotation jobs: many photos in, one label map + summary per photo out, in the background.

Each job is a folder (job.json, manifest.json, results/, masks/) written atomically, so a restart finds
finished photos and resumes the rest; one worker thread feeds the shared engine, GPU batching included.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import HTTPException

from service.drafting.answer import coco_image_entry, described_classes, output_classes
from service.drafting.batcher import BatcherClosed
from service.drafting.errors import PhotoRejected
from service.drafting.photo_files import list_folder, safe_name, write_atomic
from service.formats import png as png_format

ACTIVE, FINAL = ("queued", "running"), ("done", "cancelled", "failed")


class JobStore:
    def __init__(self, root: Path, engine, metrics=None):
        self.root, self.engine, self.metrics = Path(root), engine, metrics
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, dict] = {}
        self._cancel: set[str] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Load jobs from disk, requeue unfinished ones, and start the worker."""
        for state_file in sorted(self.root.glob("*/job.json")):
            try:
                state = json.loads(state_file.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # a foreign or damaged folder is not ours to fix
            self._jobs[state["id"]] = state
            if state["status"] in ACTIVE:
                # Counts may lag the files by one photo if the process died between the two writes.
                succeeded = len(list((state_file.parent / "results").glob("*.json")))
                state.update(status="queued", succeeded=succeeded, done=succeeded + len(state["failures"]))
                self._queue.put(state["id"])
        self._worker = threading.Thread(target=self._loop, name="tailor-jobs", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current photo; an unfinished job stays "running" on disk and resumes on restart."""
        self._stopping.set()
        self._queue.put(None)
        if self._worker:
            self._worker.join(timeout)

    # -- creation ----------------------------------------------------------------------------------
    def _new(self, source: str, names: list[str], paths: list[str], formats: list[str], extra: dict,
             inputs: Path | None = None) -> dict:
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        (folder / "results").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(exist_ok=True)
        if inputs is not None:
            os.replace(inputs, folder / "inputs")  # before queueing, so the worker finds them
        write_atomic(folder / "manifest.json", json.dumps({"names": names, "paths": paths}))
        state = {"id": job_id, "status": "queued", "source": source, "formats": formats, "total": len(names),
                 "done": 0, "succeeded": 0, "failed": 0, "failures": [], "created": time.time(),
                 "started": None, "finished": None, "error": None, **extra}
        with self._lock:
            self._jobs[job_id] = state
            self._save(state)
        self._queue.put(job_id)
        return self.get(job_id)

    def create_from_folder(self, batch_root: Path | None, folder: str, formats: list[str], max_files: int,
                           left_right: bool = False) -> dict:
        found = list_folder(batch_root, folder, max_files)
        return self._new("folder", [n for n, _ in found], [str(p) for _, p in found], formats,
                         {"folder": folder, "left_right": left_right})

    def create_from_uploads(self, files: list[tuple[str, BinaryIO]], formats: list[str],
                            left_right: bool = False) -> dict:
        """Copy uploaded files into a new job's inputs/ folder (blocking I/O: call in a thread)."""
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".upload-"))
        names, paths = [], []
        try:
            for i, (name, fileobj) in enumerate(files):
                dest = staging / f"{i:05d}_{safe_name(name)}"
                with open(dest, "wb") as out:
                    shutil.copyfileobj(fileobj, out, 1 << 20)
                names.append(name)
                paths.append(dest.name)  # relative to inputs/, so the job folder can move
            return self._new("upload", names, paths, formats, {"folder": None, "left_right": left_right},
                             inputs=staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # already moved into the job unless something failed

    # -- queries -------------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict:
        with self._lock:
            state = self._jobs.get(job_id)
            if state is None:
                raise HTTPException(404, f"no batch job {job_id!r}")
            return json.loads(json.dumps(state))  # a deep copy the caller may keep

    def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[dict]:
        self.get(job_id)
        files = sorted((self.root / job_id / "results").glob("*.json"))
        files = files[offset: None if limit is None else offset + limit]
        return [json.loads(f.read_text()) for f in files]

    def mask_path(self, job_id: str, index: int) -> Path:
        self.get(job_id)
        path = self.root / job_id / "masks" / f"{index:05d}.png"
        if not path.is_file():
            raise HTTPException(404, f"batch job {job_id} has no mask for image {index}")
        return path

    def cancel(self, job_id: str) -> dict:
        with self._lock:
            state = self._jobs.get(job_id)
            if state is None:
                raise HTTPException(404, f"no batch job {job_id!r}")
            if state["status"] == "queued":
                state.update(status="cancelled", finished=time.time())
                self._save(state)
            elif state["status"] == "running":
                self._cancel.add(job_id)  # the worker stops before its next photo
        return self.get(job_id)

    # -- the worker ----------------------------------------------------------------------------------
    def _save(self, state: dict) -> None:
        write_atomic(self.root / state["id"] / "job.json", json.dumps(state, indent=1))

    def _update(self, job_id: str, **changes: Any) -> dict:
        with self._lock:
            state = self._jobs[job_id]
            state.update(changes)
            self._save(state)
            return state

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                if self._jobs.get(job_id, {}).get("status") != "queued":
                    continue
            try:
                self._run(job_id)
            except BatcherClosed:
                return  # shutting down mid-photo: the job resumes from its files on the next start
            except Exception as exc:  # a broken job must not stop the worker for the next one
                self._update(job_id, status="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time())

    def _run(self, job_id: str) -> None:
        folder = self.root / job_id
        manifest = json.loads((folder / "manifest.json").read_text())
        state = self._update(job_id, status="running", started=time.time())
        failed_at = {f["index"] for f in state["failures"]}
        for index, (name, rel) in enumerate(zip(manifest["names"], manifest["paths"])):
            if self._stopping.is_set():
                return
            if job_id in self._cancel:
                self._cancel.discard(job_id)
                self._update(job_id, status="cancelled", finished=time.time())
                return
            if index in failed_at or (folder / "results" / f"{index:05d}.json").is_file():
                continue  # finished before a restart
            path = Path(rel) if state["source"] == "folder" else folder / "inputs" / rel
            try:
                # Jobs written before the option existed have no "left_right": they were unsplit.
                self._one(folder, job_id, index, name, path, state["formats"], state.get("left_right", False))
            except PhotoRejected as exc:
                self._fail(job_id, index, name, str(exc))
            except OSError as exc:
                self._fail(job_id, index, name, f"cannot read {name}: {exc.strerror or exc}")
            else:
                with self._lock:
                    s = self._jobs[job_id]
                    s["done"] += 1
                    s["succeeded"] += 1
                    self._save(s)
                if self.metrics:
                    self.metrics.jobs_images.labels("ok").inc()
        self._update(job_id, status="done", finished=time.time())

    def _fail(self, job_id: str, index: int, name: str, reason: str) -> None:
        with self._lock:
            s = self._jobs[job_id]
            s["failures"].append({"index": index, "name": name, "reason": reason})
            s["done"] += 1
            s["failed"] += 1
            self._save(s)
        if self.metrics:
            self.metrics.jobs_images.labels("failed").inc()

    def _one(self, folder: Path, job_id: str, index: int, name: str, path: Path, formats: list[str],
             left_right: bool = False) -> None:
        data = path.read_bytes()
        with self.engine.draft(data, name) as pred:
            labels, taxonomy = output_classes(pred.labels, pred.taxonomy, left_right)
            classes = described_classes(labels, pred.confidence, taxonomy, formats)
            coco_image, annotations = coco_image_entry(index + 1, name, labels, pred.confidence, taxonomy,
                                                       pred.difficulty)
            write_atomic(folder / "masks" / f"{index:05d}.png", png_format.encode(labels))
            h, w = labels.shape
            result = {"index": index, "name": name, "width": int(w), "height": int(h),
                      "difficulty": round(float(pred.difficulty), 4), "model_version": pred.model_version,
                      "class_names": taxonomy.names, "classes": classes,
                      "mask_url": f"/v1/batches/{job_id}/masks/{index}.png",
                      "coco": {"image": coco_image, "annotations": annotations}}
        write_atomic(folder / "results" / f"{index:05d}.json", json.dumps(result))
