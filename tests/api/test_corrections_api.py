"""The /v1/corrections API on real CCP photos: uploads (PNG label map or COCO RLE, multipart or JSON),
refusals that store nothing, review, list filters and pages, fetches and the exports `tailor train` reads.

Each refusal compares the database's row counts and the data folder's files before and after.
"""
from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import pytest
from tests.conftest import CCP, make_settings, png_array
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.formats import coco_rle
from tests.store.helpers import snapshot
from models.images import encode_png, read_label_map
from models.taxonomy import load_taxonomy

TAX = load_taxonomy("fashion-13")


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, predictor):
    settings = make_settings(tmp_path_factory.mktemp("corrections"), warmup=False)
    with TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def pair():
    lut = TAX.lut_for_labels((CCP / "labels.txt").read_text().splitlines())
    return lambda i: ((CCP / "images" / f"{i}.jpg").read_bytes(), lut[read_label_map(CCP / "masks" / f"{i}.png")])


def upload(client, image=None, mask=None, **fields):
    files = {}
    if image is not None:
        files["image"] = ("photo.jpg", image, "image/jpeg")
    if mask is not None:
        files["mask"] = ("mask.png", encode_png(mask) if isinstance(mask, np.ndarray) else mask, "image/png")
    return client.post("/v1/corrections", files=files or None, data=fields)


def rle_of(labels) -> str:
    return json.dumps({TAX.names[cid]: rle for cid, rle in coco_rle.encode_label_map(labels).items() if cid})


def test_upload_fetch_and_draft(app_client, pair):
    img, labels = pair("0011")
    draft = labels.copy()
    draft[labels == 1] = 0  # the annotator added the skin the draft missed
    files = {"image": ("p.jpg", img, "image/jpeg"), "mask": ("m.png", encode_png(labels), "image/png"),
             "draft_mask": ("d.png", encode_png(draft), "image/png")}
    r = app_client.post("/v1/corrections", files=files,
                        data={"annotator": "ann", "notes": "sleeve", "draft_model_version": "v0"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/corrections/{body['id']}"
    assert (body["height"], body["width"]) == labels.shape and body["taxonomy"] == TAX.tag
    assert body["source"] == "rest" and body["status"] == "submitted" and body["annotator"] == "ann"
    assert body["draft_changed_fraction"] == pytest.approx(np.mean(labels == 1))
    assert body["classes"] == sorted(int(c) for c in np.unique(labels))
    np.testing.assert_array_equal(png_array(app_client.get(body["mask_url"]).content), labels)
    np.testing.assert_array_equal(png_array(app_client.get(body["draft_mask_url"]).content), draft)
    assert app_client.get(body["image_url"]).content == img
    assert app_client.get(f"/v1/corrections/{body['id']}").json() == body
    assert app_client.get("/v1/corrections/999999").status_code == 404


def test_upload_by_hash_with_rle_and_as_json(app_client, pair):
    img, labels = pair("0012")
    first = upload(app_client, img, labels).json()
    r = upload(app_client, image_sha256=first["image_sha256"], rle=rle_of(labels), source="cvat")
    assert r.status_code == 201, r.text
    assert r.json()["image_sha256"] == first["image_sha256"]
    np.testing.assert_array_equal(png_array(app_client.get(r.json()["mask_url"]).content), labels)
    body = {"image_base64": base64.b64encode(img).decode(), "rle": json.loads(rle_of(labels)),
            "annotator": "json", "external_id": "task-1"}
    r = app_client.post("/v1/corrections", json=body)
    assert r.status_code == 201, r.text
    np.testing.assert_array_equal(png_array(app_client.get(r.json()["mask_url"]).content), labels)
    # The same external id again replaces that correction instead of adding one.
    again = app_client.post("/v1/corrections", json={**body, "notes": "second pass"})
    assert again.json()["id"] == r.json()["id"] and again.json()["notes"] == "second pass"


def _refusals(pair):
    img, labels = pair("0013")
    bad_ids = labels.copy()
    bad_ids[10:20, 10:20] = TAX.num_classes
    rle = json.loads(rle_of(labels))
    small = coco_rle.encode(np.ones((10, 10), bool))
    return {
        "mask_wrong_size": dict(image=img, mask=labels[:-4]),
        "unknown_class_id": dict(image=img, mask=bad_ids),
        "image_not_decodable": dict(image=b"\xff\xd8\xff\xe0 truncated jpeg", mask=labels),
        "colour_mask": dict(image=img, mask=encode_png(np.dstack([labels] * 3))),
        "mask_not_png": dict(image=img, mask=b"not a png"),
        "unknown_class_name": dict(image=img, rle=json.dumps({**rle, "cape": small})),
        "rle_sizes_differ": dict(image=img, rle=json.dumps({**rle, "bag": small})),
        "rle_not_json": dict(image=img, rle="{nope"),
        "unknown_image_hash": dict(image_sha256="0" * 64, mask=labels),
        "no_mask": dict(image=img),
        "no_image": dict(mask=labels),
        "mask_and_rle": dict(image=img, mask=labels, rle=json.dumps(rle)),
        "bad_source": dict(image=img, mask=labels, source="email"),
    }


@pytest.mark.parametrize("case", list(_refusals(lambda i: (b"", np.zeros((2, 2), np.uint8)))))
def test_refused_uploads_store_nothing(app_client, pair, case):
    upload(app_client, *pair("0014"))  # the store is not empty
    store = app_client.app.state.store
    before = snapshot(store)
    r = upload(app_client, **_refusals(pair)[case])
    assert 400 <= r.status_code < 500 and r.status_code not in (401, 403), (r.status_code, r.text)
    assert r.json()["detail"]
    assert snapshot(store) == before


def test_refusal_messages_are_specific(app_client, pair):
    cases = _refusals(pair)
    assert "image is" in upload(app_client, **cases["mask_wrong_size"]).json()["detail"]
    assert "class ids [13]" in upload(app_client, **cases["unknown_class_id"]).json()["detail"]
    assert "cape" in upload(app_client, **cases["unknown_class_name"]).json()["detail"]
    r = app_client.post("/v1/corrections", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_review_list_and_exports(app_client, pair, tmp_path):
    ids = [upload(app_client, *pair(i), annotator="rev-test").json()["id"] for i in ("0015", "0016", "0018")]
    r = app_client.post(f"/v1/corrections/{ids[0]}/review", json={"status": "approved", "reviewer": "lead"})
    assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["reviewer"] == "lead"
    app_client.post(f"/v1/corrections/{ids[1]}/review", json={"status": "approved", "reviewer": "lead"})
    r = app_client.post(f"/v1/corrections/{ids[2]}/review", json={"status": "rejected", "reviewer": "lead",
                                                                   "notes": "missed the bag"})
    assert r.json()["review_notes"] == "missed the bag"
    r = app_client.post(f"/v1/corrections/{ids[2]}/review", json={"status": "meh", "reviewer": "x"})
    assert r.status_code == 422
    r = app_client.post("/v1/corrections/999999/review", json={"status": "approved", "reviewer": "x"})
    assert r.status_code == 404

    page = app_client.get("/v1/corrections", params={"annotator": "rev-test", "limit": 2}).json()
    assert page["total"] == 3 and [c["id"] for c in page["items"]] == ids[:2]
    page2 = app_client.get("/v1/corrections", params={"annotator": "rev-test", "limit": 2, "offset": 2}).json()
    assert [c["id"] for c in page2["items"]] == ids[2:]
    rejected = app_client.get("/v1/corrections", params={"status": "rejected", "annotator": "rev-test"}).json()
    assert [c["id"] for c in rejected["items"]] == [ids[2]]
    assert app_client.get("/v1/corrections", params={"since": "2000-01-01T00:00:00"}).status_code == 422
    assert app_client.get("/v1/corrections", params={"since": "2999-01-01T00:00:00Z"}).json()["total"] == 0

    from training.dataset import scan_dataset

    r = app_client.post("/v1/corrections/export", json={"dest": "round1"})
    assert r.status_code == 200, r.text
    assert r.json()["images"] == 2 and r.json()["path"] == "round1"
    folder = scan_dataset(app_client.app.state.settings.export_dir / "round1")
    assert folder.labels == TAX.names and len(folder.samples) == 2
    assert app_client.post("/v1/corrections/export", json={"dest": "round1"}).status_code == 409
    for dest in ("../escape", "/abs/path", "", "."):
        assert app_client.post("/v1/corrections/export", json={"dest": dest}).status_code == 422, dest
    z = app_client.get("/v1/corrections/export.zip")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(z.content)) as archive:
        names = archive.namelist()
        assert "labels.txt" in names and archive.read("labels.txt").decode().split() == TAX.names
        assert sum(n.startswith("masks/") and n.endswith(".png") for n in names) == 2
