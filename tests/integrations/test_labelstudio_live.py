"""A real Label Studio as the client: it connects to the service, stores its drafts, and sends back annotations.

Label Studio runs from its own virtual environment (.cache/ls-venv, made once by ls_env.sh) on a throw-away
data directory; the service runs in-process under uvicorn with the bundled model, so its store can be read.
"""
from __future__ import annotations

import base64
import time

import cv2
import numpy as np
import pytest

from service.formats import ls_brush
from tests.conftest import CCP
from tests.integrations.conftest import tasks as _tasks
from tests.live_server import serve_app
from models.images import decode_image

try:
    from label_studio_sdk.converter.brush import decode_rle  # the reference decoder, in the project venv
except ImportError as exc:
    raise ImportError("this test needs the reference decoder: pip install --no-deps label-studio-sdk==2.1.2") from exc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

BASIC = ("label-studio", "basic-auth-pw")  # what LS must send to the backend's routes


def _label_config(names: list[str]) -> str:
    # Capitalised labels: the service matches class names case-insensitively.
    brush = "".join(f'<Label value="{n.capitalize()}"/>' for n in names[1:])
    return (f'<View><Image name="image" value="$image"/>'
            f'<BrushLabels name="tag" toName="image">{brush}</BrushLabels>'
            '<PolygonLabels name="poly" toName="image"><Label value="Pants"/><Label value="Top"/></PolygonLabels>'
            '</View>')


@pytest.fixture(scope="module")
def service(tmp_path_factory, label_studio):
    from service.api.app import create_app
    from service.settings import Settings

    tmp = tmp_path_factory.mktemp("service")
    settings = Settings(_env_file=None, data_dir=tmp / "data", threads=1,
                        allowed_url_hosts=["127.0.0.1", str(label_studio.base_url).removeprefix("http://").rstrip("/")],
                        labelstudio_basic_user=BASIC[0],
                        labelstudio_basic_pass=BASIC[1])
    app = create_app(settings)  # the bundled model, loaded by the lifespan as `tailor serve` does
    with serve_app(app) as url:
        yield url, app


def _stored(app, external_id: str):
    from service.store.corrections import find_by_external_id

    with app.state.store.session() as s:
        return find_by_external_id(s, "labelstudio", external_id)


def test_label_studio_gets_drafts_and_sends_back_corrections(label_studio, service):
    from service.store.corrections import load_label_map

    ls, (svc_url, app) = label_studio, service
    predictor = app.state.engine.predictor
    names = predictor.taxonomy.names
    photos = sorted((CCP / "images").glob("*.jpg"))[:3]

    project = ls.post("/api/projects", json={"title": "garments", "label_config": _label_config(names)})
    pid = project.raise_for_status().json()["id"]
    ls.post(f"/api/projects/{pid}/import",
            files=[(p.name, (p.name, p.read_bytes(), "image/jpeg")) for p in photos]).raise_for_status()
    tasks = _tasks(ls, pid)
    assert len(tasks) == 3 and all(t["data"]["image"].startswith("/data/upload/") for t in tasks)

    backend = f"{svc_url}/v1/labelstudio"
    ml = ls.post("/api/ml", json={"project": pid, "url": backend, "title": "tailor", "is_interactive": False,
                                  "auth_method": "BASIC_AUTH", "basic_auth_user": BASIC[0],
                                  "basic_auth_pass": BASIC[1]})
    assert ml.status_code == 201, ml.text
    # LS sends Basic auth on /health, /setup and /predict, but the webhook it creates for the backend carries
    # only the headers set on it: /setup (called again right after LS made it) gave it the same credentials.
    hooks = ls.get("/api/webhooks/", params={"project": pid}).raise_for_status().json()
    hook = next(h for h in hooks if h["url"] == f"{backend}/webhook")
    assert hook["headers"] == {"Authorization": "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()}
    r = ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": pid},
                json={"selectedItems": {"all": True, "excluded": []}})
    assert r.status_code == 200, r.text

    drafts = {}
    for task in tasks:
        photo = next(p for p in photos if task["data"]["image"].endswith(p.name))
        expected = predictor.predict(decode_image(photo)).labels
        h, w = expected.shape
        preds = ls.get("/api/predictions", params={"task": task["id"]}).raise_for_status().json()
        assert len(preds) == 1, f"task {task['id']}: LS stored {len(preds)} predictions"
        pred = preds[0]
        assert pred["model_version"] == predictor.version and 0 < pred["score"] <= 1
        brushes = [reg for reg in pred["result"] if reg["type"] == "brushlabels"]
        present = [c for c in np.unique(expected) if c != 0]
        assert sorted(reg["value"]["brushlabels"][0].lower() for reg in brushes) == sorted(names[c] for c in present)
        for reg in brushes:
            truth = expected == names.index(reg["value"]["brushlabels"][0].lower())
            np.testing.assert_array_equal(decode_rle(reg["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0, truth)
        assert {reg["value"]["polygonlabels"][0] for reg in pred["result"] if reg["type"] == "polygonlabels"} \
            <= {"Pants", "Top"}
        drafts[task["id"]] = (pred, expected)

    # An annotator keeps the draft's pants, repaints the top and adds skin over part of it.
    task = tasks[0]
    pred, expected = drafts[task["id"]]
    h, w = expected.shape
    pants = next(reg for reg in pred["result"] if reg["value"].get("brushlabels") == ["Pants"])
    top = expected == names.index("top")
    patch = np.zeros((h, w), dtype=bool)
    patch[200:320, 200:350] = True
    regions = [pants, *ls_brush.regions(top.astype(np.uint8), {1: "Top"}, "tag", "image"),
               *ls_brush.regions(patch.astype(np.uint8), {1: "Skin"}, "tag", "image")]
    for k, reg in enumerate(regions):
        reg["id"] = f"r{k}"
    ann = ls.post(f"/api/tasks/{task['id']}/annotations",
                  json={"result": regions, "parent_prediction": pred["id"], "lead_time": 12.5})
    assert ann.status_code == 201, ann.text
    external_id = f"project/{pid}/annotation/{ann.json()['id']}"

    deadline = time.monotonic() + 60
    while (row := _stored(app, external_id)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert row is not None, "the webhook's annotation never became a correction (see the service log)"
    want = np.zeros((h, w), dtype=np.uint8)
    want[expected == names.index("pants")] = names.index("pants")
    want[top], want[patch] = names.index("top"), names.index("skin")
    np.testing.assert_array_equal(load_label_map(app.state.store.files, row), want)
    assert f"overlap_pixels={int((patch & (top | (expected == names.index('pants')))).sum())}" in row.notes
    # The draft is the prediction the annotator started from, read back from Label Studio.
    assert row.draft_model_version == predictor.version
    np.testing.assert_array_equal(load_label_map(app.state.store.files, row, draft=True), expected)


def _smart_config(names: list[str]) -> str:
    # Smart tools: a keypoint per click and the brush's smart mode, both sent to the backend as context.
    labels = "".join(f'<Label value="{n.capitalize()}"/>' for n in names[1:])
    return (f'<View><Image name="image" value="$image"/>'
            f'<BrushLabels name="tag" toName="image" smart="true">{labels}</BrushLabels>'
            f'<KeyPointLabels name="click" toName="image" smart="true">{labels}</KeyPointLabels></View>')


def _interior(mask: np.ndarray) -> tuple[int, int]:
    depth = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    return int(x), int(y)


def test_a_smart_click_labelled_skirt_on_a_drafted_dress_comes_back_as_a_skirt(label_studio, service):
    ls, (svc_url, app) = label_studio, service
    predictor = app.state.engine.predictor
    names = predictor.taxonomy.names
    photo = CCP / "images" / "0002.jpg"  # one large dress, skirt its runner-up
    drafted = predictor.predict(decode_image(photo)).labels
    h, w = drafted.shape

    pid = ls.post("/api/projects", json={"title": "smart garments", "label_config": _smart_config(names)}
                  ).raise_for_status().json()["id"]
    ls.post(f"/api/projects/{pid}/import", files=[(photo.name, (photo.name, photo.read_bytes(), "image/jpeg"))]
            ).raise_for_status()
    task = _tasks(ls, pid)[0]
    ml = ls.post("/api/ml", json={"project": pid, "url": f"{svc_url}/v1/labelstudio", "title": "tailor",
                                  "is_interactive": True, "auth_method": "BASIC_AUTH", "basic_auth_user": BASIC[0],
                                  "basic_auth_pass": BASIC[1]})
    assert ml.status_code == 201, ml.text
    ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": pid},
            json={"selectedItems": {"all": True, "excluded": []}}).raise_for_status()

    # The draft LS stored keeps each region's meta: the runner-up class of the drafted dress.
    pred = ls.get("/api/predictions", params={"task": task["id"]}).raise_for_status().json()[0]
    dress = next(reg for reg in pred["result"] if reg["value"]["brushlabels"] == ["Dress"])
    assert dress["meta"]["text"][0].startswith("Dress 0.") and ", Skirt 0." in dress["meta"]["text"][0]
    assert dress["meta"]["tailor_regions"][0]["runner_up"] == "skirt"

    # A smart keypoint labelled Skirt inside the dress, as LS's editor serialises it for the backend.
    x, y = _interior(drafted == names.index("dress"))
    click = {"id": "smart-1", "type": "keypointlabels", "from_name": "click", "to_name": "image", "origin": "manual",
             "original_width": w, "original_height": h, "image_rotation": 0, "is_positive": True,
             "value": {"x": 100 * (x + 0.5) / w, "y": 100 * (y + 0.5) / h, "width": 0.6,
                       "keypointlabels": ["Skirt"], "labels": ["Skirt"]}}
    r = ls.post(f"/api/ml/{ml.json()['id']}/interactive-annotating",
                json={"task": task["id"], "context": {"result": [click]}})
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    data = r.json()["data"]
    regions = {reg["value"]["brushlabels"][0]: reg for reg in data["result"]}
    assert set(regions) == {"Dress", "Skirt"}, "only the classes the click changed come back"
    masks = {label: decode_rle(reg["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0 for label, reg in regions.items()}
    assert masks["Skirt"][y, x] and masks["Skirt"].sum() > 0.4 * (drafted == names.index("dress")).sum()
    assert not (masks["Skirt"] & masks["Dress"]).any()
    # Ids of the draft's regions: accepting the suggestion replaces the drafted dress, it does not pile on it.
    assert regions["Dress"]["id"] == dress["id"] and regions["Skirt"]["id"] == f"tailor-brush-{names.index('skirt')}"
    assert data["model_version"] == predictor.version

    # A smart brush stroke labelled Top across the remaining dress: the stroke's pixels arrive as RLE.
    stroke = np.zeros((h, w), dtype=bool)
    ys, xs = np.nonzero(masks["Dress"])
    sy, sx = int(np.median(ys)), int(np.median(xs))
    stroke[sy - 3:sy + 3, max(0, sx - 20):sx + 20] = True
    brush = {**ls_brush.regions(stroke.astype(np.uint8), {1: "Top"}, "tag", "image")[0], "id": "smart-2",
             "origin": "manual"}
    r = ls.post(f"/api/ml/{ml.json()['id']}/interactive-annotating",
                json={"task": task["id"], "context": {"result": [brush]}})
    top = next(reg for reg in r.json()["data"]["result"] if reg["value"]["brushlabels"] == ["Top"])
    assert (decode_rle(top["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0)[stroke].mean() > 0.9
