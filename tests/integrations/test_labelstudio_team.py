"""Label Studio as a team meets it, against the real server: a misconfigured start is refused when the backend
is added or asked for drafts (never empty drafts that stick) and recovers once fixed; a photo Tailor may not
fetch gets a prediction whose version says why, and a draft once it may; LS's webhook gets the credentials
the backend needs; "Start training" is refused with counts until enough annotations arrive approved.

Tailor restarts on the same port with other settings, as a user fixing them would restart it.
"""
from __future__ import annotations

import base64
import functools
import http.server
import logging
import re
import threading
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import CCP, wait_for
from tests.integrations.conftest import TOKEN, free_port, tasks
from tests.live_server import serve_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

API_TOKEN = "team-api-token-0123456789"
CONFIG = ('<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
          '<Label value="Top"/><Label value="Pants"/><Label value="Skin"/><Label value="Hair"/><Label value="Shoes"/>'
          '<Label value="Dress"/><Label value="Skirt"/></BrushLabels></View>')
RETRIEVE = {"selectedItems": {"all": True, "excluded": []}}


@contextmanager
def tailor(port: int, data_dir, predictor, **settings):
    from service.api.app import create_app
    from service.settings import Settings

    settings.setdefault("api_tokens", [API_TOKEN])
    s = Settings(_env_file=None, data_dir=data_dir, threads=1, start_worker=False, **settings)
    app = create_app(s, predictor=predictor)
    with serve_app(app, port=port) as url:
        yield url, app


@pytest.fixture(scope="module")
def photo_host():
    """Photos on http://localhost:PORT/, a host Tailor is not allowed to fetch from until told."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(CCP / "images"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _project(ls: httpx.Client, title: str, photos: list[str]) -> int:
    pid = ls.post("/api/projects", json={"title": title, "label_config": CONFIG}).raise_for_status().json()["id"]
    ls.post(f"/api/projects/{pid}/import", files=[(n, (n, (CCP / "images" / n).read_bytes(), "image/jpeg"))
                                                  for n in photos]).raise_for_status()
    return pid


def _connect(ls: httpx.Client, pid: int, url: str) -> httpx.Response:
    return ls.post("/api/ml", json={"project": pid, "url": f"{url}/v1/labelstudio", "title": "tailor",
                                    "auth_method": "BASIC_AUTH", "basic_auth_user": "label-studio",
                                    "basic_auth_pass": API_TOKEN})


def _predictions(ls: httpx.Client, task_id: int) -> list[dict]:
    return ls.get("/api/predictions", params={"task": task_id}).raise_for_status().json()


def _retrieve(ls: httpx.Client, pid: int) -> None:
    ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": pid},
            json=RETRIEVE).raise_for_status()


def test_a_misconfigured_start_is_refused_and_recovers(label_studio, predictor, tmp_path):
    ls, port, data = label_studio, free_port(), tmp_path / "data"
    good = {"labelstudio_url": str(ls.base_url).rstrip("/"), "labelstudio_token": TOKEN}
    pid = _project(ls, "misconfigured", ["0001.jpg", "0002.jpg"])
    # Only the settings a new user starts with: LS cannot even add the backend, and says which setting is missing.
    with tailor(port, data, predictor):
        r = _connect(ls, pid, f"http://127.0.0.1:{port}")
    assert r.status_code == 400 and "/v1/labelstudio/refused/set-TAILOR_LABELSTUDIO_URL" in r.text, r.text
    with tailor(port, data, predictor, **good) as (url, app):
        ml = _connect(ls, pid, url)
        assert ml.status_code == 201, ml.text
        _retrieve(ls, pid)
        version = app.state.engine.predictor.version
    assert all([p["model_version"] for p in _predictions(ls, t["id"])] == [version] for t in tasks(ls, pid))

    # Restarted with a token LS refuses: "Retrieve predictions" stores nothing, and the backend shows why.
    before = {t["id"] for t in tasks(ls, pid)}
    ls.post(f"/api/projects/{pid}/import", files=[("f", ("0003.jpg", (CCP / "images" / "0003.jpg").read_bytes(),
                                                         "image/jpeg"))]).raise_for_status()
    third = ({t["id"] for t in tasks(ls, pid)} - before).pop()
    # (LS refreshes a backend's state, calling /health and /setup, whenever it is read: read it while up.)
    with tailor(port, data, predictor, **{**good, "labelstudio_token": "not-a-token"}):
        _retrieve(ls, pid)
        backend = ls.get(f"/api/ml/{ml.json()['id']}").raise_for_status().json()
    assert backend["state"] == "ER", backend
    assert "refused/token-refused:set-TAILOR_LABELSTUDIO_TOKEN" in backend["error_message"]
    assert _predictions(ls, third) == []
    with tailor(port, data, predictor, **good):
        _retrieve(ls, pid)
        assert ls.get(f"/api/ml/{ml.json()['id']}").json()["state"] == "CO"
    assert [p["model_version"] for p in _predictions(ls, third)] == [version]


def test_a_photo_tailor_may_not_fetch_gets_a_reason_then_a_draft(label_studio, predictor, photo_host, tmp_path):
    ls, port, data = label_studio, free_port(), tmp_path / "data"
    good = {"labelstudio_url": str(ls.base_url).rstrip("/"), "labelstudio_token": TOKEN}
    pid = ls.post("/api/projects", json={"title": "by url", "label_config": CONFIG}).raise_for_status().json()["id"]
    ls.post(f"/api/projects/{pid}/import", json=[{"image": f"{photo_host}/0004.jpg"}]).raise_for_status()
    task = tasks(ls, pid)[0]["id"]
    with tailor(port, data, predictor, **good) as (url, app):
        assert _connect(ls, pid, url).status_code == 201
        version = app.state.engine.predictor.version
        for _ in range(2):  # asked again each time, and the same failure is stored once
            _retrieve(ls, pid)
        status = httpx.get(f"{url}/v1/labelstudio/status").json()
    preds = _predictions(ls, task)
    assert len(preds) == 1 and preds[0]["result"] == [], preds
    why = preds[0]["model_version"]
    assert why.startswith(f"{version} no draft: {photo_host}/0004.jpg") and "allowed_url_hosts" in why
    assert status["tasks_without_draft"]["count"] == 2 and f"task {task}: " in status["tasks_without_draft"]["last"]
    # The host, and the host with its port (for a check that reads ports too).
    with tailor(port, data, predictor, **good, allowed_url_hosts=["localhost", photo_host.removeprefix("http://")]):
        _retrieve(ls, pid)
    drafted = [p for p in _predictions(ls, task) if p["model_version"] == version]
    assert len(drafted) == 1 and drafted[0]["result"] and drafted[0]["result"][0]["type"] == "brushlabels"


def _annotate(ls: httpx.Client, task: dict) -> int:
    pred = _predictions(ls, task["id"])[0]
    r = ls.post(f"/api/tasks/{task['id']}/annotations",
                json={"result": pred["result"], "parent_prediction": pred["id"]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_webhook_credentials_and_start_training(label_studio, predictor, tmp_path, caplog):
    from service.store.corrections import find_by_external_id
    from service.store.queue import list_jobs

    caplog.set_level(logging.INFO, logger="tailor.labelstudio")
    ls, port, data = label_studio, free_port(), tmp_path / "data"
    settings = {"labelstudio_url": str(ls.base_url).rstrip("/"), "labelstudio_token": TOKEN,
                "approve_on_arrival": ["labelstudio"], "retrain_min_approved": 2, "retrain_base_data": CCP,
                "eval_percent": 0.01}
    pid = _project(ls, "team", ["0005.jpg", "0006.jpg"])
    with tailor(port, data, predictor, **settings) as (url, app):
        ml = _connect(ls, pid, url).raise_for_status().json()["id"]
        _retrieve(ls, pid)
        # Too little data: refused when asked (LS marks the backend's state as an error, cleared the next time
        # anything reads it; /status keeps the answer).
        ls.post(f"/api/ml/{ml}/train").raise_for_status()
        last = httpx.get(f"{url}/v1/labelstudio/status").json()["train_requests"]["last"]
        assert last.startswith(f"project {pid}: refused: 0 approved photo(s)") and "needs 2" in last

        # /setup gave LS's webhook the credentials LS sends; a wrong one is refused, counted, and put right.
        hook = next(h for h in ls.get("/api/webhooks/", params={"project": pid}).json()
                    if h["url"] == f"{url}/v1/labelstudio/webhook")
        sent = "Basic " + base64.b64encode(f"label-studio:{API_TOKEN}".encode()).decode()
        assert hook["headers"] == {"Authorization": sent}
        ls.patch(f"/api/webhooks/{hook['id']}/", json={"url": hook["url"], "headers": {"Authorization": "Basic eDp5"}}
                 ).raise_for_status()
        first, second = tasks(ls, pid)
        lost = _annotate(ls, first)
        status = wait_for(lambda: (s := httpx.get(f"{url}/v1/labelstudio/status").json())["refused"]["count"] and s)
        assert status["refused"]["last"].startswith("/v1/labelstudio/webhook")
        with app.state.store.session() as s:
            assert find_by_external_id(s, "labelstudio", f"project/{pid}/annotation/{lost}") is None
        _retrieve(ls, pid)  # LS calls /setup first
        assert ls.get(f"/api/webhooks/{hook['id']}/").json()["headers"] == {"Authorization": sent}
        assert httpx.get(f"{url}/v1/labelstudio/status").json()["projects"][str(pid)]["webhook"]["updated"] is True

        # Annotations arrive approved (LS's own submit stands for the review); then training is queued.
        ids = [ls.patch(f"/api/annotations/{lost}", json={"lead_time": 3}).raise_for_status().json()["id"],
               _annotate(ls, second)]

        def stored():
            with app.state.store.session() as s:
                rows = [find_by_external_id(s, "labelstudio", f"project/{pid}/annotation/{i}") for i in ids]
            return all(rows) and rows
        rows = wait_for(stored, timeout=60)
        assert rows and [r.status for r in rows] == ["approved", "approved"]
        logged = lambda: [r.getMessage() for r in caplog.records if "stored as correction" in r.getMessage()]
        assert wait_for(lambda: len(logged()) == 2, timeout=10), logged()
        assert not [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
        ls.post(f"/api/ml/{ml}/train").raise_for_status()
        with app.state.store.session() as s:
            jobs, _ = list_jobs(s, kind="retrain")
        assert len(jobs) == 1 and jobs[0].status == "queued"
        last = httpx.get(f"{url}/v1/labelstudio/status").json()["train_requests"]["last"]
        assert last == f"project {pid}: queued job {jobs[0].id}"


def test_the_readmes_five_minutes_work_as_written(label_studio, predictor, tmp_path, monkeypatch):
    """The README's exports, run by bash (the LS token pasted in), its config, its backend URL and its steps."""
    import subprocess

    from typer.testing import CliRunner

    from service.cli import app as cli
    from service.settings import Settings
    from tests.integrations.readme import label_config, section, tailor_exports

    ls, port = label_studio, free_port()
    lines = [line.replace("PASTE-YOUR-LS-TOKEN", TOKEN).replace(":8080", f":{ls.base_url.port}")
             for line in tailor_exports()]
    out = subprocess.run(["bash", "-c", "\n".join([*lines, "env"])], capture_output=True, text=True, check=True)
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if line.startswith("TAILOR_"))
    assert set(values) <= {f"TAILOR_{f.upper()}" for f in Settings.model_fields}
    assert {"TAILOR_LABELSTUDIO_URL", "TAILOR_LABELSTUDIO_TOKEN", "TAILOR_API_TOKENS"} <= set(values)
    settings = {k.removeprefix("TAILOR_").lower(): v for k, v in values.items()}
    pid = ls.post("/api/projects", json={"title": "readme", "label_config": label_config()}).raise_for_status().json()
    pid = pid["id"]
    ls.post(f"/api/projects/{pid}/import", files=[(n, (n, (CCP / "images" / n).read_bytes(), "image/jpeg"))
                                                  for n in ("0007.jpg", "0008.jpg")]).raise_for_status()
    backend = re.search(r"URL `(http://[^`]+)`", section()).group(1).replace(":8000", f":{port}")
    with tailor(port, tmp_path / "data", predictor, **settings) as (url, app):
        ml = ls.post("/api/ml", json={"project": pid, "url": backend, "title": "tailor", "auth_method": "BASIC_AUTH",
                                      "basic_auth_user": "anyone", "basic_auth_pass": values["TAILOR_API_TOKENS"]})
        assert ml.status_code == 201, ml.text
        _retrieve(ls, pid)
        version = app.state.engine.predictor.version
        first = tasks(ls, pid)[0]
        assert [p["model_version"] for p in _predictions(ls, first["id"])] == [version]
        annotation = _annotate(ls, first)
        monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "data"))

        def listed():
            r = CliRunner().invoke(cli, ["corrections", "list", "--source", "labelstudio"])
            return "1 correction(s)" in r.output and r.output
        assert "approved" in wait_for(listed, timeout=60)
        status = httpx.get(f"{url}/v1/labelstudio/status").json()
        assert status["webhooks"]["count"] >= 1 and status["refused"]["count"] == 0
        ls.post(f"/api/ml/{ml.json()['id']}/train").raise_for_status()
        last = httpx.get(f"{url}/v1/labelstudio/status").json()["train_requests"]["last"]
        assert last.startswith(f"project {pid}: refused: ") and "needs 5" in last, (annotation, last)
