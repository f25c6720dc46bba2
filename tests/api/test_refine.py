"""POST /v1/refine on real CCP photos: a click turns a drafted dress into a skirt from the kept draft, with no
second model call; every way of sending the photo; bad edits, unknown or outdated hashes; regions in /v1/predict.

The app here counts its backend's calls, so "no model call" is measured, not inferred from the answer.
"""
from __future__ import annotations

import base64
import hashlib
import json

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.conftest import CCP, DEFAULT_MODEL, SlowBackend, make_settings

from service.api.app import create_app
from service.api.schemas.predict import PredictResponse
from service.drafting.predictor import Predictor
from service.formats import ls_brush, png

DRESS_PHOTO = CCP / "images" / "0002.jpg"   # drafted with one large dress (skirt its runner-up)
OTHER_PHOTO = CCP / "images" / "0007.jpg"


@pytest.fixture(scope="module")
def counted(tmp_path_factory, predictor):
    backend = SlowBackend(predictor.backend, 0.0)  # the real model, its calls counted
    model = Predictor(DEFAULT_MODEL, backend_instance=backend, verify=False)
    app = create_app(make_settings(tmp_path_factory.mktemp("refine"), warmup=False), predictor=model)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, backend


@pytest.fixture(scope="module")
def drafted(counted):
    client, _ = counted
    photo = DRESS_PHOTO.read_bytes()
    r = client.post("/v1/predict", params={"formats": "png"}, files={"image": ("dress.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text
    answer = r.json()
    return photo, answer, png.decode(base64.b64decode(answer["label_map_png"]))


def interior(mask: np.ndarray) -> tuple[int, int]:
    depth = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    return int(x), int(y)


def test_predict_lists_regions_with_their_runner_up_and_the_photos_hash(drafted):
    photo, a, labels = drafted
    assert PredictResponse.model_validate(a).model_dump(exclude_none=True, mode="json") == a
    assert a["content_hash"] == hashlib.sha256(photo).hexdigest()
    dress = next(r for r in a["regions"] if r["class"] == "dress")
    assert (dress["runner_up"], dress["area"]) == ("skirt", int((labels == a["class_names"].index("dress")).sum()))
    assert 0 <= dress["runner_up_probability"] < dress["probability"] <= 1
    assert [r["area"] for r in a["regions"]] == sorted((r["area"] for r in a["regions"]), reverse=True)
    assert all(r["area"] >= 64 and r["class"] != "background" for r in a["regions"])


def test_a_click_turns_the_drafted_dress_into_a_skirt_from_the_kept_draft(counted, drafted):
    client, backend = counted
    photo, a, labels = drafted
    names = a["class_names"]
    x, y = interior(labels == names.index("dress"))
    calls = backend.calls
    r = client.post("/v1/refine", json={"content_hash": a["content_hash"], "formats": "png,ls_brush",
                                        "edits": [{"x": x, "y": y, "class": "skirt"}]})
    assert r.status_code == 200, r.text
    b = r.json()
    assert PredictResponse.model_validate(b).model_dump(exclude_none=True, mode="json") == b
    assert backend.calls == calls and b["model_calls"] == 0
    refined = png.decode(base64.b64decode(b["label_map_png"]))
    skirt = refined == names.index("skirt")
    dress = labels == names.index("dress")
    # The click relabels much of the dress (as far as the model finds a skirt plausible), not its surroundings.
    assert refined[y, x] == names.index("skirt") and skirt.sum() > 0.4 * dress.sum()
    assert (skirt & dress).sum() > 0.95 * skirt.sum()
    assert b["changed_pixels"] == int((refined != labels).sum()) and b["edits"] == 1
    entry = next(c for c in b["classes"] if c["name"] == "skirt")
    np.testing.assert_array_equal(ls_brush.decode(entry["encodings"]["ls_brush"], *refined.shape), skirt)
    assert any(reg["class"] == "skirt" for reg in b["regions"])
    assert b["timings_ms"]["total"] < 1000, b["timings_ms"]  # one click on a kept CCP draft, on this CPU


def test_no_edits_give_back_the_predicted_draft_and_every_body_kind_works(counted, drafted):
    client, backend = counted
    photo, a, labels = drafted
    calls = backend.calls
    answers = [
        client.post("/v1/refine", data={"edits": "[]", "formats": "png"},
                    files={"image": ("dress.jpg", photo, "image/jpeg")}),
        client.post("/v1/refine", params={"edits": "[]", "formats": "png"}, content=photo,
                    headers={"content-type": "image/jpeg"}),
        client.post("/v1/refine", json={"image_base64": base64.b64encode(photo).decode(), "edits": [],
                                        "formats": ["png"]}),
        client.post("/v1/refine", data={"content_hash": a["content_hash"], "formats": "png"},
                    files={"edits": ("edits.json", b"[]", "application/json")}),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        b = r.json()
        assert (b["model_calls"], b["changed_pixels"], b["content_hash"]) == (0, 0, a["content_hash"])
        np.testing.assert_array_equal(png.decode(base64.b64decode(b["label_map_png"])), labels)
    assert backend.calls == calls


def test_a_photo_with_no_kept_draft_is_drafted_once_then_refined_from_it(counted):
    client, backend = counted
    photo = OTHER_PHOTO.read_bytes()
    calls = backend.calls
    first = client.post("/v1/refine", params={"edits": json.dumps([{"x": 10, "y": 10, "class": "bag"}])},
                        content=photo, headers={"content-type": "image/jpeg"})
    assert first.status_code == 200, first.text
    again = client.post("/v1/refine", json={"content_hash": first.json()["content_hash"],
                                            "edits": [{"x": 10, "y": 10, "class": "bag"}]})
    assert (first.json()["model_calls"], again.json()["model_calls"], backend.calls - calls) == (1, 0, 1)
    # A click in the background takes a bounded area around it, not the photo.
    bag = next(c for c in again.json()["classes"] if c["name"] == "bag")
    assert 0 < bag["area"] <= 0.1 * again.json()["width"] * again.json()["height"]


@pytest.mark.parametrize("edits, message", [
    ([{"x": 9999, "y": 10, "class": "skirt"}], "outside the photo"),
    ([{"x": 10, "y": -1, "class": "skirt"}], "outside the photo"),
    ([{"x": 10, "y": 10, "class": "skrit"}], "unknown class 'skrit'"),
    ([{"points": [[10, 10], [20, 20]], "class": "skirt", "width": 0}], "width"),
    ([{"x": 10, "y": 10, "class": "skirt", "colour": "red"}], "unknown fields"),
    ([{"x": 10, "class": "skirt"}], "x and y must be numbers"),
    ([42], "must be an object"),
])
def test_bad_edits_are_a_422_that_says_what_is_wrong(counted, drafted, edits, message):
    client, _ = counted
    r = client.post("/v1/refine", json={"content_hash": drafted[1]["content_hash"], "edits": edits})
    assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_malformed_requests_are_refused_before_any_drafting(counted, drafted):
    client, backend = counted
    photo, a, _ = drafted
    calls = backend.calls
    cases = [
        (client.post("/v1/refine", json={"content_hash": a["content_hash"], "edits": {"x": 1}}), 422, "edits"),
        (client.post("/v1/refine", json={"content_hash": a["content_hash"]}), 422, "edits"),
        (client.post("/v1/refine", json={"content_hash": "abc", "edits": []}), 422, "content_hash"),
        (client.post("/v1/refine", json={"content_hash": a["content_hash"], "image_url": "http://x/y.jpg",
                                         "edits": []}), 422, "exactly one"),
        (client.post("/v1/refine", data={"edits": "[{"}, files={"image": ("p.jpg", photo, "image/jpeg")}),
         422, "not valid JSON"),
        (client.post("/v1/refine", content=photo, headers={"content-type": "image/jpeg"}), 422, "no edits"),
        (client.post("/v1/refine", files={"edits": ("edits.json", b"[]")}), 400,
         "'image' file field or its 'content_hash'"),
        (client.post("/v1/refine", content=b"edits", headers={"content-type": "text/plain"}), 415, "multipart"),
    ]
    for r, status, message in cases:
        assert r.status_code == status and message in json.dumps(r.json()), r.text
    assert backend.calls == calls


def test_a_hash_whose_draft_expired_is_a_404_and_one_of_another_model_a_409(counted, drafted):
    client, _ = counted
    a = drafted[1]
    kept = client.app.state.engine.kept
    scores = kept.get((a["content_hash"], a["model_version"]))
    other = hashlib.sha256(b"another photo").hexdigest()
    kept.put((other, "an-older-model"), scores)
    r = client.post("/v1/refine", json={"content_hash": other, "edits": []})
    assert r.status_code == 409 and "an-older-model" in r.json()["detail"] and "send the photo" in r.json()["detail"]
    clock = kept.clock
    kept.clock = lambda: clock() + kept.ttl_s + 1  # the idle time runs out
    try:
        r = client.post("/v1/refine", json={"content_hash": a["content_hash"], "edits": []})
    finally:
        kept.clock = clock
    assert r.status_code == 404 and "no draft of photo" in r.json()["detail"], r.text


def test_refine_is_guarded_exactly_as_predict_is(tmp_path, predictor, drafted):
    # It hands back a draft of the caller's own photo, as /v1/predict does: the same access rule, whatever
    # that rule becomes. Here every rule that could apply is strict: tokens, closed reads, no loopback pass.
    token = "a-token-of-sixteen-chars"
    settings = make_settings(tmp_path, warmup=False, api_tokens=[token], read_open=False, loopback_open=False,
                             host="0.0.0.0")
    photo = drafted[0]
    with TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False) as client:
        for headers in ({}, {"Authorization": "Bearer not-the-right-token"}, {"Authorization": f"Bearer {token}"}):
            predict = client.post("/v1/predict", files={"image": ("p.jpg", photo, "image/jpeg")}, headers=headers)
            refine = client.post("/v1/refine", data={"edits": "[]"}, files={"image": ("p.jpg", photo, "image/jpeg")},
                                 headers=headers)
            assert refine.status_code == predict.status_code, (headers, predict.text, refine.text)


def test_the_docs_describe_the_refine_body_and_the_regions(counted):
    schema = counted[0].get("/openapi.json").json()
    body = schema["paths"]["/v1/refine"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"].endswith("/RefineRequest")
    assert "edits" in schema["components"]["schemas"]["RefineRequest"]["required"]
    assert "runner_up" in schema["components"]["schemas"]["RegionResult"]["properties"]
    assert "regions" in schema["components"]["schemas"]["PredictResponse"]["properties"]
