"""The /v1/worklists API on real CCP photos: drafting a batch, the effort-balanced split, the CSV,
QA status and notes, refusals that store nothing, and QA/effort/agreement of real corrections
(CCP ground truth as the annotator's final mask) checked against numbers computed here.
"""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from tests.conftest import CCP, make_settings, png_array
from fastapi.testclient import TestClient

from service.api.app import create_app
from tests.store.helpers import snapshot
from models.images import encode_png, read_label_map
from models.taxonomy import load_taxonomy

TAX = load_taxonomy("fashion-13")
IDS = ["0001", "0002", "0003", "0004", "0005", "0006"]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, predictor):
    settings = make_settings(tmp_path_factory.mktemp("worklists"), warmup=False)
    with TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False) as c:
        yield c


def gt(image_id: str) -> np.ndarray:
    lut = TAX.lut_for_labels((CCP / "labels.txt").read_text().splitlines())
    return lut[read_label_map(CCP / "masks" / f"{image_id}.png")]


def photo_files(ids):
    return [("images", (f"{i}.jpg", (CCP / "images" / f"{i}.jpg").read_bytes(), "image/jpeg")) for i in ids]


@pytest.fixture(scope="module")
def batch(app_client):
    r = app_client.post("/v1/worklists", json={"name": "ccp-six", "annotators": ["ann", "bob"]})
    assert r.status_code == 201, r.text
    wl = r.json()
    r = app_client.post(f"/v1/worklists/{wl['id']}/images", files=photo_files(IDS))
    assert r.status_code == 201, r.text
    assert [i["image_id"] for i in r.json()["added"]] == IDS
    r = app_client.post(f"/v1/worklists/{wl['id']}/assign", json={})
    assert r.status_code == 200, r.text
    return r.json()


def test_split_balances_predicted_effort_hardest_first(batch):
    items = batch["items"]
    assert {i["annotator"] for i in items} == {"ann", "bob"}
    load = {n: sum(i["predicted_effort_s"] for i in items if i["annotator"] == n) for n in ("ann", "bob")}
    # Greedy longest-first: the shares differ by at most the largest single photo's predicted effort.
    assert abs(load["ann"] - load["bob"]) <= max(i["predicted_effort_s"] for i in items) + 1e-6
    assert batch["shares"]["ann"]["predicted_s"] == pytest.approx(load["ann"], abs=0.2)
    for who in ("ann", "bob"):
        share = sorted((i for i in items if i["annotator"] == who), key=lambda i: i["position"])
        assert [i["position"] for i in share] == list(range(1, len(share) + 1))
        assert [i["difficulty"] for i in share] == sorted((i["difficulty"] for i in share), reverse=True)
    for i in items:
        assert i["draft_classes"] and "background" not in i["draft_classes"]
        assert 0 < i["difficulty"] < 1 and i["reason"]


def test_draft_is_the_models_prediction(app_client, batch, photo_bytes):
    item = next(i for i in batch["items"] if i["image_id"] == "0001")
    draft = png_array(app_client.get(item["draft_url"]).content)
    mask = png_array(app_client.post("/v1/predict/mask.png",
                                     files={"image": ("0001.jpg", (CCP / "images" / "0001.jpg").read_bytes())}).content)
    assert np.array_equal(draft, mask)
    assert app_client.get(item["image_url"]).content == (CCP / "images" / "0001.jpg").read_bytes()


def test_a_phone_sized_photo_is_drafted_at_its_full_size(app_client):
    """A JPEG four times CCP size is decoded at 1/4 scale for the model, stored as uploaded, and drafted
    at its full size: the same draft the predict route gives for it."""
    from PIL import Image

    up = Image.open(CCP / "images" / "0007.jpg")
    buf = io.BytesIO()
    up.resize((up.width * 4, up.height * 4), Image.BICUBIC).save(buf, "JPEG", quality=92)
    big = buf.getvalue()
    wl = app_client.post("/v1/worklists", json={"name": "phone-sized"}).json()
    r = app_client.post(f"/v1/worklists/{wl['id']}/images", files=[("images", ("big-0007.jpg", big, "image/jpeg"))])
    assert r.status_code == 201, r.text
    item = r.json()["added"][0]
    draft = png_array(app_client.get(item["draft_url"]).content)
    assert draft.shape == (up.height * 4, up.width * 4)
    mask = png_array(app_client.post("/v1/predict/mask.png", content=big, headers={"content-type": "image/jpeg"}).content)
    assert np.array_equal(draft, mask)
    assert app_client.get(item["image_url"]).content == big


def test_csv_has_the_columns_and_every_photo(app_client, batch):
    r = app_client.get(f"/v1/worklists/{batch['id']}/worklist.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0])[:6] == ["image_id", "annotator", "classes_present", "difficulty", "notes", "qa_status"]
    assert sorted(r["image_id"] for r in rows) == IDS
    by_id = {i["image_id"]: i for i in batch["items"]}
    for row in rows:
        assert row["annotator"] == by_id[row["image_id"]]["annotator"]
        assert row["classes_present"].split(";") == by_id[row["image_id"]]["draft_classes"]
        assert row["qa_status"] == "pending"


def test_qa_status_and_notes_are_updatable(app_client, batch):
    url = f"/v1/worklists/{batch['id']}/items/0002"
    r = app_client.patch(url, json={"qa_status": "flagged", "notes": "check the left shoe"})
    assert r.status_code == 200, r.text
    assert app_client.get(url).json()["qa_status"] == "flagged"
    rows = list(csv.DictReader(io.StringIO(app_client.get(f"/v1/worklists/ccp-six/worklist.csv").text)))
    row = next(r for r in rows if r["image_id"] == "0002")
    assert row["qa_status"] == "flagged" and "check the left shoe" in row["notes"]
    bad = app_client.patch(url, json={"qa_status": "done"})
    assert bad.status_code == 422 and "pending" in bad.json()["detail"]
    assert app_client.patch(url, json={"colour": "red"}).status_code == 422
    assert app_client.patch(f"/v1/worklists/{batch['id']}/items/nope", json={"notes": "x"}).status_code == 404
    assert app_client.get("/v1/worklists/no-such-batch").status_code == 404


def test_refused_uploads_store_nothing(app_client, batch):
    before = snapshot(app_client.app.state.store)
    bad = photo_files(["0007"]) + [("images", ("notes.jpg", b"not a photo", "image/jpeg"))]
    r = app_client.post(f"/v1/worklists/{batch['id']}/images", files=bad)
    assert r.status_code == 422 and "notes.jpg" in r.json()["detail"]
    r = app_client.post(f"/v1/worklists/{batch['id']}/images", files=photo_files(["0001"]))
    assert r.status_code == 422 and "already" in r.json()["detail"]
    r = app_client.post("/v1/worklists", json={"name": "ccp-six"})
    assert r.status_code == 409
    assert snapshot(app_client.app.state.store) == before


def submit(client, sha: str, labels: np.ndarray, annotator: str) -> dict:
    r = client.post("/v1/corrections", files={"mask": ("m.png", encode_png(labels), "image/png")},
                    data={"image_sha256": sha, "annotator": annotator})
    assert r.status_code == 201, r.text
    return r.json()


def test_qa_and_effort_of_a_real_correction(app_client, batch):
    item = next(i for i in batch["items"] if i["image_id"] == "0003")
    final = gt("0003")
    # A stray 9x9 speck of shoes far from any shoe: the islands check must report exactly that box.
    final[20:29, 30:39] = TAX.class_id("shoes")
    submit(app_client, item["image_sha256"], final, item["annotator"])
    qa = app_client.get(item["qa_url"]).json()
    assert qa["correction"]["status"] == "submitted"
    speck = [f for f in qa["flags"] if f["check"] == "islands" and f["bbox"] == [30, 20, 39, 29]]
    assert len(speck) == 1 and speck[0]["classes"] == ["shoes"] and speck[0]["explanation"]
    draft = png_array(app_client.get(item["draft_url"]).content)
    assert qa["effort"]["changed_fraction"] == pytest.approx(np.mean(draft != final), abs=1e-9)
    assert qa["checklist"]["no_islands"] is False

    png = app_client.get(speck[0]["overlay_url"])
    assert png.status_code == 200 and png_array(png.content).ndim == 3
    assert app_client.get(f"{item['qa_url']}/flag.png", params={"key": "islands:x:1,2,3,4"}).status_code == 404

    # Ticking the flag off resolves it in the checklist without changing the mask.
    r = app_client.patch(item["qa_url"].rsplit("/qa", 1)[0], json={"resolved_flags": [speck[0]["key"]]})
    assert r.status_code == 200
    again = app_client.get(item["qa_url"]).json()
    assert again["checklist"]["flags_resolved"] == qa["checklist"]["flags_resolved"] + 1
    assert next(f for f in again["flags"] if f["key"] == speck[0]["key"])["resolved"] is True

    effort = app_client.get(f"/v1/worklists/{batch['id']}/effort").json()
    assert effort["corrections"] == 1
    version = app_client.app.state.engine.predictor.version
    assert effort["by_model_version"][version]["changed_fraction"] == pytest.approx(qa["effort"]["changed_fraction"])
    assert set(effort["by_class"]) >= {"shoes", "skin"}
    store_wide = app_client.get("/v1/effort").json()
    assert store_wide["corrections"] >= 1 and store_wide["over_time"][0]["model_version"] == version


def test_batch_qa_lists_photos_without_a_correction(app_client, batch):
    r = app_client.get(f"/v1/worklists/{batch['id']}/qa").json()
    assert "0003" in {row["image_id"] for row in r["images"]}
    assert set(r["without_correction"]) == set(IDS) - {row["image_id"] for row in r["images"]}
    assert r["checklist"]["images"] == len(r["images"])


def test_agreement_between_two_annotators(app_client, batch):
    item = next(i for i in batch["items"] if i["image_id"] == "0004")
    a = gt("0004")
    b = a.copy()
    shoes = a == TAX.class_id("shoes")
    b[shoes] = TAX.class_id("socks")           # bob calls every shoe a sock
    submit(app_client, item["image_sha256"], a, "ann")
    submit(app_client, item["image_sha256"], b, "bob")
    pairs = app_client.get(f"{item['qa_url'].rsplit('/qa', 1)[0]}/agreement").json()
    assert len(pairs) == 1 and pairs[0]["annotators"] == ["ann", "bob"]
    assert pairs[0]["pixel_agreement"] == pytest.approx(1 - shoes.mean(), abs=1e-9)
    assert pairs[0]["class_iou"]["shoes"] == 0.0 and pairs[0]["class_iou"]["skin"] == 1.0
    batch_figures = app_client.get(f"/v1/worklists/{batch['id']}/agreement").json()
    assert batch_figures["images_with_pairs"] == 1 and "ann & bob" in batch_figures["summary"]["by_pair"]
    png = app_client.get(f"{item['qa_url'].rsplit('/qa', 1)[0]}/disagreement.png", params={"a": "ann", "b": "bob"})
    overlay = png_array(png.content)
    assert overlay.shape[:2] == a.shape
    # Magenta exactly where the two differ.
    magenta = (overlay[..., 0] > 150) & (overlay[..., 1] < 100) & (overlay[..., 2] > 150)
    assert magenta[shoes].mean() > 0.95 and magenta[~shoes].mean() < 0.01
    missing = app_client.get(f"{item['qa_url'].rsplit('/qa', 1)[0]}/disagreement.png", params={"a": "ann", "b": "cy"})
    assert missing.status_code == 404 and "cy" in missing.json()["detail"]


def test_layered_annotation_overlaps_are_flagged(app_client, batch):
    """Pants painted over part of a shoe: an overlaps flag with exactly that area and box, in both encodings."""
    from service.formats import coco_rle, ls_brush

    labels = gt("0005")
    h, w = labels.shape
    shoes, pants = labels == TAX.class_id("shoes"), labels == TAX.class_id("pants")
    pants_layer = pants.copy()
    ys, xs = np.nonzero(shoes)
    y0, x0 = int(ys[len(ys) // 2]) - 5, int(xs[len(xs) // 2]) - 6   # around a pixel inside a shoe
    block = np.zeros_like(shoes)
    block[y0:y0 + 10, x0:x0 + 12] = True
    assert (block & shoes).sum() > 20
    pants_layer |= block & shoes
    layers = {"shoes": coco_rle.encode(shoes), "pants": coco_rle.encode(pants_layer)}
    r = app_client.post("/v1/qa/check", json={"layers": layers})
    assert r.status_code == 200, r.text
    over = [f for f in r.json()["flags"] if f["check"] == "overlaps"]
    claimed = block & shoes
    cys, cxs = np.nonzero(claimed)
    assert over and over[0]["area"] == int(claimed.sum())
    assert over[0]["bbox"] == [int(cxs.min()), int(cys.min()), int(cxs.max()) + 1, int(cys.max()) + 1]
    assert r.json()["checklist"]["clean_overlaps"] is False
    brush = {"shoes": ls_brush.encode(shoes), "pants": ls_brush.encode(pants_layer)}
    r2 = app_client.post("/v1/qa/check", json={"format": "ls_brush", "layers": brush, "width": w, "height": h,
                                               "worklist": batch["name"], "image_id": "0005"})
    assert r2.status_code == 200, r2.text
    assert [f for f in r2.json()["flags"] if f["check"] == "overlaps"] == over
    clean = app_client.post("/v1/qa/check", json={"layers": {"shoes": coco_rle.encode(shoes)}}).json()
    assert not [f for f in clean["flags"] if f["check"] == "overlaps"] and clean["checklist"]["clean_overlaps"]
    for bad, word in (({"layers": {"cape": coco_rle.encode(shoes)}}, "cape"),
                      ({"format": "ls_brush", "layers": brush}, "width"),
                      ({"layers": {"shoes": {"size": [2, 2], "counts": "zz"}}}, "shoes")):
        r = app_client.post("/v1/qa/check", json=bad)
        assert r.status_code == 422 and word in r.text


def test_report_and_delivery(app_client, batch):
    import re
    import zipfile

    html = app_client.get(f"/v1/worklists/{batch['id']}/report.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "ccp-six" in html.text and not re.search(r"""(src|href)=["']https?://""", html.text)

    exports = app_client.app.state.settings.export_dir
    r = app_client.post(f"/v1/worklists/{batch['id']}/delivery", json={"dest": "first"})
    assert r.status_code == 409 and "no approved mask" in r.json()["detail"] and "0001" in r.json()["detail"]
    assert not (exports / "deliveries" / "first").exists()
    assert app_client.post(f"/v1/worklists/{batch['id']}/delivery", json={"dest": "../up"}).status_code == 422

    corr = app_client.get(f"/v1/worklists/{batch['id']}/items/0003").json()["correction"]
    r = app_client.post(f"/v1/corrections/{corr['id']}/review", json={"status": "approved", "reviewer": "rita"})
    assert r.status_code == 200, r.text
    r = app_client.post(f"/v1/worklists/{batch['id']}/delivery", json={"dest": "first", "approved_only": True})
    assert r.status_code == 201, r.text
    assert r.json()["images"] == 1 and r.json()["image_ids"] == ["0003"]
    z = app_client.get(r.json()["zip_url"])
    assert z.status_code == 200
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        names = zf.namelist()
        assert "first/report/report.html" in names and "first/annotations.coco.json" in names
        label = png_array(zf.read("first/labels/0003.png"))
    final = png_array(app_client.get(f"/v1/corrections/{corr['id']}/mask.png").content)
    assert np.array_equal(label, final)
    r = app_client.post(f"/v1/worklists/{batch['id']}/delivery", json={"dest": "first", "approved_only": True})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    assert app_client.get(f"/v1/worklists/{batch['id']}/delivery/nope.zip").status_code == 404


def test_qa_of_a_stored_correction(app_client, batch):
    """A correction in a worklist gets the worklist's draft; one outside any worklist only its own checks."""
    item = next(i for i in batch["items"] if i["image_id"] == "0006")
    final = gt("0006")
    final[40:47, 50:57] = TAX.class_id("bag")
    cid = submit(app_client, item["image_sha256"], final, "cy")["id"]
    r = app_client.get(f"/v1/corrections/{cid}/qa").json()
    assert r["worklist"]["image_id"] == "0006" and r["draft"] == "worklist" and r["effort"] is not None
    assert any(f["check"] == "islands" and f["bbox"] == [50, 40, 57, 47] for f in r["flags"])
    outside = app_client.post("/v1/corrections", files={"image": ("p.jpg", (CCP / "images" / "0009.jpg").read_bytes()),
                                                        "mask": ("m.png", encode_png(gt("0009")), "image/png")})
    r = app_client.get(f"/v1/corrections/{outside.json()['id']}/qa").json()
    assert r["worklist"] is None and r["draft"] == "none" and r["effort"] is None
    assert {f["check"] for f in r["flags"]} <= {"empty_margins", "islands", "left_right"}
    assert app_client.get("/v1/corrections/999999/qa").status_code == 404
