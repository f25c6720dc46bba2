"""Batch jobs: uploads and server folders in, per-photo results, COCO and masks out; cancel; restarts.

Results must equal what /v1/predict gives for the same photo, bad files must be listed as failures
with reasons, folder paths must stay under batch_root, and a new process must find finished work and
resume unfinished work: a batch is a batch_predict job on the database queue.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from tests.conftest import make_settings, png_array, post_image, wait_for
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.formats import coco_rle

FINAL = ("done", "cancelled", "failed")


def _finish(client, job_id: str) -> dict:
    state = wait_for(lambda: (s := client.get(f"/v1/batches/{job_id}").json())["status"] in FINAL and s, 120)
    assert state, f"job {job_id} did not finish"
    return state


@pytest.fixture(scope="module")
def upload_job(client, photos):
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    files.append(("images", ("broken.jpg", b"\xff\xd8\xff garbage", "image/jpeg")))
    r = client.post("/v1/batches", params={"formats": "coco_rle"}, files=files)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/batches/{r.json()['id']}"
    return _finish(client, r.json()["id"])


def test_upload_job_reports_progress_and_failures(upload_job, photos):
    s = upload_job
    assert s["status"] == "done" and s["source"] == "upload"
    assert (s["total"], s["done"], s["succeeded"], s["failed"]) == (4, 4, 3, 1)
    [failure] = s["failures"]
    assert failure["name"] == "broken.jpg" and failure["index"] == 3
    assert "broken.jpg" in failure["reason"] and "not a readable image" in failure["reason"]


def test_results_match_single_predictions(client, upload_job, photos):
    r = client.get(f"/v1/batches/{upload_job['id']}/results")
    assert r.status_code == 200
    images = r.json()["images"]
    assert [im["name"] for im in images] == [p.name for p in photos]
    for im, photo in zip(images, photos):
        single = post_image(client, photo.read_bytes(), formats="coco_rle").json()
        assert im["classes"] == single["classes"] and im["difficulty"] == single["difficulty"]
        mask = client.get(im["mask_url"])
        assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
        expected = png_array(post_image(client, photo.read_bytes(), path="/v1/predict/mask.png").content)
        np.testing.assert_array_equal(png_array(mask.content), expected)


def test_coco_document_decodes_to_the_masks(client, upload_job):
    job_id = upload_job["id"]
    coco = client.get(f"/v1/batches/{job_id}/coco.json").json()
    assert client.get(f"/v1/batches/{job_id}/results", params={"coco": True}).json()["coco"] == coco
    assert len(coco["images"]) == 3 and {c["id"] for c in coco["categories"]} == set(range(1, 13))
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    for image in coco["images"]:
        labels = png_array(client.get(f"/v1/batches/{job_id}/masks/{image['id'] - 1}.png").content)
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert {a["category_id"] for a in anns} == set(np.unique(labels)) - {0}
        for a in anns:
            truth = labels == a["category_id"]
            np.testing.assert_array_equal(coco_rle.decode(a["segmentation"]), truth)
            assert a["area"] == int(truth.sum())
            x, y, w, h = a["bbox"]
            assert truth[y:y + h, x:x + w].sum() == a["area"]


def test_folder_job_under_batch_root(client, batch_root):
    r = client.post("/v1/batches", json={"folder": "shoot"})
    assert r.status_code == 202, r.text
    s = _finish(client, r.json()["id"])
    assert s["source"] == "folder" and s["folder"] == "shoot"
    assert (s["total"], s["succeeded"], s["failed"]) == (4, 3, 1)
    assert s["failures"][0]["name"] == "notes.jpg"


@pytest.mark.parametrize("folder, status, words", [
    ("../", 403, "outside batch_root"),
    ("shoot/../../..", 403, "outside batch_root"),
    ("escape_link", 403, "outside batch_root"),
    ("/etc", 400, "relative"),
    ("", 400, "relative"),
    ("no_such_folder", 404, "does not exist"),
])
def test_folders_outside_batch_root_are_refused(client, batch_root, tmp_path_factory, folder, status, words):
    link = batch_root / "escape_link"
    if not link.exists():
        link.symlink_to(tmp_path_factory.mktemp("outside"), target_is_directory=True)
    r = client.post("/v1/batches", json={"folder": folder})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


@pytest.mark.parametrize("kwargs, status, words", [
    ({"params": {"formats": "gif"}, "json": {"folder": "shoot"}}, 422, "known formats"),
    ({"json": {"folder": "shoot", "formats": ["mask"]}}, 422, "known formats"),
    ({"json": {"directory": "shoot"}}, 422, "folder"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "JSON"),
    ({"content": b"abc", "headers": {"content-type": "text/plain"}}, 415, "multipart"),
    ({"files": {"note": ("a.txt", b"")}, "data": {"formats": "png"}}, 202, ""),
    ({"data": {"formats": "png"}, "files": []}, 415, "content type"),
])
def test_bad_batch_requests(client, kwargs, status, words):
    r = client.post("/v1/batches", **kwargs)
    assert r.status_code == status, r.text
    if words:
        assert words in str(r.json()["detail"])


def test_unknown_jobs_are_404(client):
    assert client.get("/v1/batches/99999").status_code == 404
    assert client.get("/v1/batches/99999/results").status_code == 404
    assert client.get("/v1/batches/..%2F..%2Fetc").status_code == 404  # no route has that shape


@pytest.mark.parametrize("path", ["/v1/batches/0123456789abcdef0123456789abcdef",
                                  "/v1/batches/0123456789abcdef0123456789abcdef/results"])
def test_job_ids_are_numbers(client, path):
    assert client.get(path).status_code == 422  # a batch's id is its job's id


def test_cancel_stops_a_running_job_and_the_worker_moves_on(client, batch_root, photos):
    many = batch_root / "many"
    many.mkdir(exist_ok=True)
    for i in range(30):
        shutil.copy(photos[i % len(photos)], many / f"{i:03d}.jpg")
    job_id = client.post("/v1/batches", json={"folder": "many"}).json()["id"]
    wait_for(lambda: client.get(f"/v1/batches/{job_id}").json()["done"] >= 1, 60)
    r = client.post(f"/v1/batches/{job_id}/cancel")
    assert r.status_code == 200
    s = _finish(client, job_id)
    assert s["status"] == "cancelled" and 1 <= s["done"] < s["total"] == 30
    assert len(client.get(f"/v1/batches/{job_id}/results").json()["images"]) == s["succeeded"]
    # DELETE cancels too, and a cancelled job stays cancelled.
    assert client.delete(f"/v1/batches/{job_id}").json()["status"] == "cancelled"
    later = client.post("/v1/batches", json={"folder": "shoot"}).json()["id"]
    assert _finish(client, later)["status"] == "done"


def _job_row(settings, job_id: str, **changes):
    """The batch's job row, as the database holds it; with `changes`, written first (a crash's leftovers)."""
    from sqlalchemy import update

    from service.store import queue
    from service.store.db import store_from_settings
    from service.store.tables import Job

    store = store_from_settings(settings)
    try:
        with store.session() as s:
            if changes:
                s.execute(update(Job).where(Job.id == int(job_id)).values(**changes))
                s.commit()
            return queue.get_job(s, int(job_id))
    finally:
        store.close()


def test_results_survive_a_restart_and_unfinished_jobs_resume(tmp_path, predictor, photos):
    from datetime import timedelta

    from service.jobs.batch_predict import output_dir
    from service.store.tables import utcnow

    settings = make_settings(tmp_path, warmup=False)
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    files.append(("images", ("broken.jpg", b"\xff\xd8\xff garbage", "image/jpeg")))
    with TestClient(create_app(settings, predictor=predictor)) as c:
        job_id = c.post("/v1/batches", files=files).json()["id"]
        s = _finish(c, job_id)
        assert (s["status"], s["succeeded"], s["failed"]) == ("done", 3, 1)
        finished = c.get(f"/v1/batches/{job_id}/results").json()["images"]
    # Make it look like a server killed after its first photo: the job still "running" on a worker that
    # stopped heartbeating an hour ago, one result on disk, one photo counted.
    for f in sorted((output_dir(settings, int(job_id)) / "results").glob("*.json"))[1:]:
        f.unlink()
    progress = {**_job_row(settings, job_id).progress, "done": 1, "succeeded": 1, "failed": 0, "failures": []}
    _job_row(settings, job_id, status="running", worker="killed-server", finished_at=None, progress=progress,
             heartbeat_at=utcnow() - timedelta(hours=1))
    with TestClient(create_app(settings, predictor=predictor)) as c:  # its worker recovers the job, resumes it
        s = _finish(c, job_id)
        assert (s["status"], s["succeeded"], s["failed"]) == ("done", 3, 1)
        resumed = c.get(f"/v1/batches/{job_id}/results").json()["images"]
    assert resumed == finished
    with TestClient(create_app(settings, predictor=predictor)) as c:  # and once more
        assert c.get(f"/v1/batches/{job_id}").json()["status"] == "done"
        assert c.get(f"/v1/batches/{job_id}/results").json()["images"] == resumed
    assert not list(settings.work_dir.rglob("*.tmp")), "atomic writes leave no temp files behind"


def test_shutdown_mid_job_resumes_on_the_next_start(tmp_path, predictor, batch_root, photos):
    from tests.conftest import DEFAULT_MODEL, SlowBackend

    from service.drafting.predictor import Predictor

    slow = Predictor(DEFAULT_MODEL, backend_instance=SlowBackend(predictor.backend, 0.3), verify=False)
    settings = make_settings(tmp_path, batch_root=batch_root, warmup=False)
    many = batch_root / "resume"
    many.mkdir(exist_ok=True)
    for i in range(8):
        shutil.copy(photos[i % len(photos)], many / f"{i:03d}.jpg")
    with TestClient(create_app(settings, predictor=slow)) as c:
        job_id = c.post("/v1/batches", json={"folder": "resume"}).json()["id"]
        wait_for(lambda: c.get(f"/v1/batches/{job_id}").json()["done"] >= 1, 60)
    stopped = _job_row(settings, job_id)
    # Given back to the queue, not failed: the attempt does not count, and the photos done stay done.
    assert stopped.status == "queued" and stopped.attempts == 0 and 1 <= stopped.progress["done"] < 8
    with TestClient(create_app(settings, predictor=predictor)) as c:
        s = _finish(c, job_id)
        assert (s["status"], s["succeeded"], s["failed"]) == ("done", 8, 0)
        assert len(c.get(f"/v1/batches/{job_id}/results").json()["images"]) == 8
