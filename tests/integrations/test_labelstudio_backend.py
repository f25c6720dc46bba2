"""The Label Studio ML backend protocol without Label Studio: a tiny LS stand-in serves photos and predictions.

The service runs under uvicorn (real HTTP, so the webhook's 1 s answer is measured for real); regions are
decoded with our decoder and the sdk's reference one and compared with the predictor's own label maps.
"""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from tests.conftest import CCP, make_settings, wait_for

from service.formats import ls_brush
from service.integrations.labelstudio import (
    LabelConfigError,
    annotation_label_map,
    class_labels,
    label_classes,
    parse_label_config,
    project_id,
)
from tests.integrations.fake_labelstudio import CONFIG, PAT, SLOW_GATE, TOKEN, running
from tests.live_server import serve_app
from models.images import decode_image

try:
    from label_studio_sdk.converter.brush import decode_rle
except ImportError as exc:  # a missing reference is a failure, not a skip
    raise ImportError("these tests need the reference decoder: pip install --no-deps label-studio-sdk==2.1.2") from exc

NAMES = {"skin": "Skin", "hair": "HAIR", "top": "Top", "pants": "Trousers", "dress": "Dress", "skirt": "skirt",
         "shoes": "Shoes"}


@pytest.fixture(scope="module")
def fake_ls(photos):
    with running(photos) as (url, handler):
        yield url, handler


@pytest.fixture(scope="module")
def service(tmp_path_factory, predictor, fake_ls):
    from service.api.app import create_app

    # The fake LS's host and port: fetching allows a listed port only (the bare host: the LS client's check).
    # Base data and a tiny evaluation share: one approved photo is enough for a retrain to be queued.
    settings = make_settings(tmp_path_factory.mktemp("ls"), url_timeout_s=5,
                             allowed_url_hosts=["127.0.0.1", fake_ls[0].removeprefix("http://")],
                             labelstudio_label_map={"pants": "Trousers"}, retrain_base_data=CCP,
                             retrain_min_approved=1, eval_percent=0.01)
    app = create_app(settings, predictor=predictor)
    with serve_app(app) as url, httpx.Client(base_url=f"{url}/v1/labelstudio", timeout=60) as http:
        yield http, app


@pytest.fixture(scope="module")
def connected(service, fake_ls):
    """LS has connected project 1: /setup told the service its hostname and token."""
    http, _ = service
    r = http.post("/setup", json={"project": "1.1732000000", "schema": CONFIG, "hostname": fake_ls[0],
                                  "access_token": TOKEN, "extra_params": None})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def expected(predictor, photos):
    return [predictor.predict(decode_image(p)) for p in photos]


@pytest.fixture(scope="module")
def predicted(service, connected, fake_ls, photos):
    http, _ = service
    tasks = [{"id": 11, "data": {"image": f"/data/upload/1/{photos[0].name}"}},
             {"id": 12, "data": {"image": f"{fake_ls[0]}/public/{photos[1].name}"}},
             {"id": 13, "data": {"image": "/data/upload/1/missing.jpg"}},
             {"id": 14, "data": {"image": "http://example.invalid/photo.jpg"}}]
    r = http.post("/predict", json={"tasks": tasks, "project": "1.1732000000", "label_config": CONFIG,
                                    "params": {"login": None, "password": None, "context": None}})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_setup_answers_the_model_version_and_the_label_match(connected, predictor):
    assert connected["model_version"] == predictor.version
    assert connected["labels"]["tag"] == NAMES
    assert connected["labels"]["poly"] == {"top": "Top", "pants": "Trousers"}
    assert {"outerwear", "accessory", "bag"} <= set(connected["classes_without_label"])


def test_health(service, predictor):
    r = service[0].get("/health")
    assert r.status_code == 200 and r.json()["status"] == "UP" and r.json()["model_version"] == predictor.version


def test_predict_answers_one_prediction_per_task_in_order(predicted, predictor):
    assert len(predicted) == 4
    assert [p["model_version"] == predictor.version for p in predicted] == [True, True, False, False]
    # A task without a draft is never empty under the live version (LS would never ask again): its version
    # says why, as LS shows it with the task's predictions.
    assert predicted[2]["result"] == [] and "404" in predicted[2]["error"]
    assert predicted[2]["model_version"].startswith(f"{predictor.version} no draft: ")
    assert "404" in predicted[2]["model_version"]
    assert predicted[3]["result"] == [] and "not allowed" in predicted[3]["error"]


def test_a_task_already_holding_its_failure_gets_nothing_new(service, connected, predicted):
    http, _ = service
    failed = predicted[2]["model_version"]
    tasks = [{"id": 13, "data": {"image": "/data/upload/1/missing.jpg"},
              "predictions": [{"id": 9, "model_version": failed, "result": []}]},
             {"id": 15, "data": {"image": "/data/upload/1/missing.jpg"}}]
    r = http.post("/predict", json={"tasks": tasks, "project": "1.1732000000", "label_config": CONFIG})
    assert r.status_code == 200, r.text
    again, other = r.json()["results"]
    assert again == [] and other["model_version"] == failed
    status = http.get("/status").json()["tasks_without_draft"]
    assert status["count"] == 4 and status["last"].startswith(("task 13: ", "task 15: "))


def test_brush_regions_decode_to_the_predictors_masks(predicted, expected, predictor):
    names = predictor.taxonomy.names
    for answer, pred in zip(predicted[:2], expected[:2]):
        labels = pred.labels
        h, w = labels.shape
        brushes = [r for r in answer["result"] if r["type"] == "brushlabels"]
        present = {names[c] for c in np.unique(labels) if c != 0}
        # Each present class with a label gets one region; outerwear/accessory have none: left out.
        assert sorted(r["value"]["brushlabels"][0] for r in brushes) == sorted(NAMES[n] for n in present if n in NAMES)
        assert "outerwear" in present
        for r in brushes:
            cid = names.index(next(n for n, lab in NAMES.items() if lab == r["value"]["brushlabels"][0]))
            truth = labels == cid
            assert (r["from_name"], r["to_name"], r["original_width"], r["original_height"]) == ("tag", "image", w, h)
            np.testing.assert_array_equal(ls_brush.decode(r["value"]["rle"], h, w), truth)
            np.testing.assert_array_equal(decode_rle(r["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0, truth)
            assert 0 < r["score"] <= 1
        assert answer["score"] == pytest.approx(1 - pred.difficulty, abs=1e-4)
        assert len({r["id"] for r in answer["result"]}) == len(answer["result"])


def test_polygons_come_with_polygon_labels(predicted, expected, predictor):
    from service.formats import polygons

    labels = expected[0].labels
    h, w = labels.shape
    polys = [r for r in predicted[0]["result"] if r["type"] == "polygonlabels"]
    assert {r["value"]["polygonlabels"][0] for r in polys} == {"Top", "Trousers"}
    assert all(r["from_name"] == "poly" and r["value"]["closed"] for r in polys)
    pts = np.concatenate([np.asarray(r["value"]["points"]) for r in polys])
    assert pts.min() >= 0 and pts.max() <= 100
    trousers = [r for r in polys if r["value"]["polygonlabels"][0] == "Trousers"]
    drawn = np.zeros((h, w), dtype=bool)
    for r in trousers:
        px = np.asarray(r["value"]["points"]) * [w / 100, h / 100] - 0.5
        drawn |= polygons.decode([{"exterior": px.tolist(), "holes": []}], h, w)
    truth = labels == predictor.taxonomy.names.index("pants")
    assert (drawn & truth).sum() / (drawn | truth).sum() > 0.9


def test_predict_refuses_configs_without_mask_controls(service):
    http, _ = service
    r = http.post("/predict", json={"tasks": [], "project": "99.1", "label_config": "<View><Image name='i' "
                                    "value='$image'/><Choices name='c' toName='i'/></View>"})
    assert r.status_code == 400 and "BrushLabels" in r.json()["detail"]
    assert http.post("/predict", json={"tasks": [], "project": "98.1"}).status_code == 400  # no config known
    assert http.post("/predict", json={"tasks": "x", "label_config": CONFIG}).status_code == 400
    r = http.post("/setup", json={"project": "1.1", "schema": "<View"})
    assert r.status_code == 307 and "label-config" in r.headers["location"]
    assert http.post(r.url.join(r.headers["location"])).status_code == 400


def _brush(mask: np.ndarray, label: str, rid: str) -> dict:
    h, w = mask.shape
    return {"id": rid, "from_name": "tag", "to_name": "image", "type": "brushlabels", "original_width": w,
            "original_height": h, "value": {"format": "rle", "rle": ls_brush.encode(mask), "brushlabels": [label]}}


def _stored(app, external_id: str, after=None):
    from service.store.corrections import find_by_external_id

    with app.state.store.session() as s:
        row = find_by_external_id(s, "labelstudio", external_id)
    return row if row is not None and (after is None or row.updated_at > after) else None


def test_webhook_stores_annotations_as_corrections(service, connected, fake_ls, expected, predicted, photos,
                                                   predictor):
    from service.store.corrections import count_corrections, load_label_map

    http, app = service
    names = predictor.taxonomy.names
    labels = expected[0].labels
    h, w = labels.shape
    top, pants = labels == names.index("top"), labels == names.index("pants")
    rect = np.zeros((h, w), dtype=bool)
    rect[300:500, 150:400] = True  # "skin", after top and pants: it wins where they overlap
    result = [_brush(top, "Top", "a"), _brush(pants, "Trousers", "b"), _brush(rect, "Skin", "c"),
              _brush(rect, "Belt", "d"), {"id": "e", "type": "choices", "value": {"choices": ["ok"]}}]
    # The draft LS kept for this annotation: our own prediction (its polygons yield to the brushes).
    fake_ls[1].predictions[7] = {"id": 7, "model_version": predictor.version, "result": predicted[0]["result"]}
    payload = {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": CONFIG},
               "annotation": {"id": 501, "task": 11, "result": result, "completed_by": 1, "parent_prediction": 7},
               "task": {"id": 11, "project": 1, "data": {"image": f"/data/upload/slow/{photos[0].name}"}}}
    SLOW_GATE.clear()
    r = http.post("/webhook", json=payload)
    # LS gives a webhook 1 s: the answer came while the image fetch is still held at the gate.
    assert _stored(app, "project/1/annotation/501") is None
    SLOW_GATE.set()
    assert r.status_code == 200 and r.json() == {"status": "accepted", "action": "ANNOTATION_CREATED",
                                                 "annotations": 1}
    row = wait_for(lambda: _stored(app, "project/1/annotation/501"), timeout=60)
    assert row is not None, "the annotation was not stored (see the log)"
    want = np.zeros((h, w), dtype=np.uint8)
    want[top], want[pants], want[rect] = names.index("top"), names.index("pants"), names.index("skin")
    np.testing.assert_array_equal(load_label_map(app.state.store.files, row), want)
    assert f"overlap_pixels={int((rect & (top | pants)).sum())}" in row.notes and "'Belt': 1" in row.notes
    assert row.annotator == "labelstudio-user-1" and row.status == "submitted"
    # The draft is the prediction the annotator started from, minus classes the project has no label for.
    draft = np.where(np.isin(labels, [names.index(n) for n in NAMES]), labels, 0)
    np.testing.assert_array_equal(load_label_map(app.state.store.files, row, draft=True), draft)
    assert row.draft_model_version == predictor.version

    payload["action"] = "ANNOTATION_UPDATED"
    payload["annotation"] = {**payload["annotation"], "result": [_brush(pants, "trousers", "b")]}
    payload["task"]["data"]["image"] = f"/data/upload/1/{photos[0].name}"
    assert http.post("/webhook", json=payload).json()["status"] == "accepted"
    updated = wait_for(lambda: _stored(app, "project/1/annotation/501", after=row.updated_at), timeout=60)
    assert updated is not None and updated.id == row.id
    np.testing.assert_array_equal(load_label_map(app.state.store.files, updated),
                                  pants * np.uint8(names.index("pants")))
    with app.state.store.session() as s:
        assert count_corrections(s, source="labelstudio") == 1


def test_start_training_is_refused_without_approved_photos_then_queued(service, connected):
    from service.store.corrections import list_corrections, review

    http, app = service
    assert http.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}}).json()["status"] == "ignored"
    # Nothing approved yet: refused when asked, with the counts; LS follows the redirect and shows its URL.
    with app.state.store.session() as s:
        for row in list_corrections(s, status="approved"):
            review(s, row.id, "submitted", "test")
    r = http.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "title": "garments"}})
    assert r.status_code == 307 and r.headers["location"].endswith("/refused/too-few-approved-photos:0-of-1")
    body = r.json()
    assert body["status"] == "refused" and "0 approved photo(s)" in body["reason"] and "needs 1" in body["reason"]
    assert body["readiness"]["needed"] == 1 and "job" not in body
    followed = http.post(r.url.join(r.headers["location"]))
    assert followed.status_code == 400 and "too-few-approved-photos" in followed.json()["detail"]
    assert not (app.state.settings.data_dir / "retrain-requests.jsonl").exists()

    with app.state.store.session() as s:
        row = list_corrections(s, source="labelstudio")[0]
        review(s, row.id, "approved", "test")
    r = http.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "title": "garments"}})
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    job = r.json()["job"]
    assert isinstance(job, int) and r.json()["readiness"]["approved"] == 1
    again = http.post("/train", json={"project": "1.1732000000", "annotations": []}).json()
    assert again["status"] == "joined" and again["job"] == job and f"job {job} was already queued" in again["reason"]
    lines = (app.state.settings.data_dir / "retrain-requests.jsonl").read_text().splitlines()
    assert [json.loads(line)["details"]["project"] for line in lines] == [1, 1]


def test_basic_auth_and_a_personal_access_token(tmp_path, predictor, fake_ls, photos):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    # No allowed_url_hosts: the LS host named by labelstudio_url is trusted for its own images.
    settings = make_settings(tmp_path, labelstudio_basic_user="ls", labelstudio_basic_pass="s3cret",
                             labelstudio_url=fake_ls[0], labelstudio_token=PAT)
    with TestClient(create_app(settings, predictor=predictor)) as c:
        assert c.get("/v1/labelstudio/health").status_code == 401
        assert c.get("/v1/labelstudio/health", auth=("ls", "wrong")).status_code == 401
        r = c.post("/v1/labelstudio/webhook", json={"action": "START_TRAINING"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        body = {"tasks": [{"id": 1, "data": {"image": f"/data/upload/1/{photos[0].name}"}},
                          {"id": 2, "data": {"image": f"{fake_ls[0]}/public/{photos[0].name}"}}],
                "label_config": CONFIG, "project": "5.1"}
        r = c.post("/v1/labelstudio/predict", json=body, auth=("ls", "s3cret"))
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert results[0]["result"] and results[0]["result"] == results[1]["result"]


def test_label_config_and_region_helpers(predictor):
    taxonomy = predictor.taxonomy
    config = parse_label_config(CONFIG)
    assert config.image_key == "image" and config.brush.name == "tag" and config.polygon.to_name == "image"
    # An explicit mapping takes its label first; a class never gets a label it does not match.
    assert class_labels(config.brush, taxonomy, {"top": "Dress"})[taxonomy.names.index("top")] == "Dress"
    assert taxonomy.names.index("dress") not in class_labels(config.brush, taxonomy, {"top": "Dress"})
    with pytest.raises(LabelConfigError):
        parse_label_config("<View><Image name='i' value='$i'/></View>")
    assert [project_id(v) for v in ("7.1732", 7, {"id": "7"}, None)] == [7, 7, 7, None]
    square = {"type": "polygonlabels", "original_width": 100, "original_height": 50,
              "value": {"points": [[10.5, 21], [30.5, 21], [30.5, 61], [10.5, 61]], "polygonlabels": ["top"]}}
    lm, report = annotation_label_map([square], 50, 100, label_classes(config, taxonomy))
    assert (np.argwhere(lm).min(0).tolist(), np.argwhere(lm).max(0).tolist()) == ([10, 10], [30, 30])
    assert report.regions == 1 and report.overlap_pixels == 0
    # A class with a brush region is read from its brushes: its polygon does not undo an erased brush.
    brush = _brush(np.zeros((50, 100), dtype=bool), "Top", "b")
    lm, report = annotation_label_map([brush, square], 50, 100, label_classes(config, taxonomy))
    assert not lm.any() and report.shadowed == 1 and "1 polygons of classes drawn" in report.notes("x")
    with pytest.raises(ValueError, match="100x50"):
        annotation_label_map([square], 60, 100, label_classes(config, taxonomy))


def test_a_token_learnt_for_one_host_is_not_sent_to_another(tmp_path):
    from service.integrations.labelstudio_client import Connections

    conns = Connections(make_settings(tmp_path, allowed_url_hosts=["127.0.0.1", "other.example"]))
    conns.remember(3, "http://127.0.0.1:8080/", TOKEN, CONFIG)
    assert conns.resolve(3).base_url == "http://127.0.0.1:8080" and conns.resolve(3).token == TOKEN
    conns.remember(3, "http://other.example", None, None)  # a /setup naming another host, without a token
    assert conns.resolve(3).token is None and conns.schema(3) == CONFIG


def test_label_studio_photo_hosts_follow_the_url_rule_with_ports(tmp_path):
    from service.integrations.labelstudio_client import Connection, Connections, ImageUnavailable

    conns = Connections(make_settings(tmp_path, allowed_url_hosts=["files.example:8081"]))
    conn = Connection(base_url=None, token=None, trusted_host=None)
    conns._check_host("http://files.example:8081/data/upload/1/a.jpg", conn)  # host and port listed: fetched
    for refused in ("http://files.example/a.jpg", "http://files.example:9000/a.jpg", "http://other.example/a.jpg"):
        with pytest.raises(ImageUnavailable, match="allowed_url_hosts"):
            conns._check_host(refused, conn)
