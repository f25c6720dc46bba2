"""Who may call the Label Studio routes, and what /setup refuses: a token whenever the API has tokens (as LS
sends it: Basic with the token as password, or a header on its webhook), and a missing LS URL or token, a
token LS refuses or labels matching no class, each answered with a redirect naming the setting to fix.
"""
from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from tests.conftest import make_settings
from tests.integrations.fake_labelstudio import CONFIG, TOKEN, running


@pytest.fixture(scope="module")
def fake_ls(photos):
    with running(photos) as (url, handler):
        yield url, handler


API_TOKEN = "api-token-0123456789abcdef"


def test_label_studio_routes_need_a_token_whenever_the_api_has_tokens(tmp_path, predictor, fake_ls):
    settings = make_settings(tmp_path, api_tokens=[API_TOKEN], labelstudio_url=fake_ls[0], labelstudio_token=TOKEN)
    setup = {"project": "5.1", "schema": CONFIG, "hostname": fake_ls[0], "access_token": TOKEN}
    with TestClient(create_app(settings, predictor=predictor)) as c:
        for path, body in (("/train", {"project": "5.1"}), ("/webhook", {"action": "START_TRAINING"}),
                           ("/setup", setup), ("/predict", {"tasks": [], "label_config": CONFIG})):
            r = c.post(f"/v1/labelstudio{path}", json=body)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), path
            assert c.post(f"/v1/labelstudio{path}", json=body, auth=("ls", "wrong-token")).status_code == 401
        assert c.get("/v1/labelstudio/health").status_code == 401
        # As LS sends it (Basic, the token as the password), or a header set on LS's webhook.
        assert c.post("/v1/labelstudio/setup", json=setup, auth=("label-studio", API_TOKEN)).status_code == 200
        basic = "Basic " + base64.b64encode(f"x:{API_TOKEN}".encode()).decode()
        for headers in ({"X-API-Token": API_TOKEN}, {"Authorization": f"Bearer {API_TOKEN}"}, {"Authorization": basic}):
            r = c.post("/v1/labelstudio/webhook", json={"action": "PROJECT_UPDATED"}, headers=headers)
            assert r.status_code == 200 and r.json()["status"] == "ignored"
        status = c.get("/v1/labelstudio/status").json()  # a read: open while reads are
        assert status["refused"]["count"] == 9 and status["refused"]["last"].startswith("/v1/labelstudio/health")
        assert status["webhooks"]["count"] == 3 and status["webhooks"]["last"] == "PROJECT_UPDATED"


def test_label_studio_routes_are_closed_off_loopback_without_tokens(tmp_path, predictor):
    with TestClient(create_app(make_settings(tmp_path, host="0.0.0.0"), predictor=predictor)) as c:
        r = c.post("/v1/labelstudio/webhook", json={"action": "START_TRAINING"})
        assert r.status_code == 403 and "TAILOR_API_TOKENS" in r.json()["detail"]


def _refused_setup(c, body) -> tuple[str, list[str]]:
    r = c.post("/v1/labelstudio/setup", json=body, follow_redirects=False)
    assert r.status_code == 307, r.text
    followed = c.post(r.headers["location"], json=body)
    assert followed.status_code == 400 and r.headers["location"] in str(followed.url)
    return r.headers["location"], r.json()["detail"]


def test_setup_names_the_setting_that_is_missing(tmp_path, predictor, fake_ls):
    ls_url = fake_ls[0]
    body = {"project": "6.1", "schema": CONFIG, "hostname": ls_url, "access_token": None}
    # The settings a new user starts with: no LS URL, no token, no allowed hosts.
    with TestClient(create_app(make_settings(tmp_path), predictor=predictor)) as c:
        where, why = _refused_setup(c, {**body, "access_token": TOKEN})
        assert where.endswith("/refused/set-TAILOR_LABELSTUDIO_URL")
        assert f"set TAILOR_LABELSTUDIO_URL={ls_url}" in why[0]
        status = c.get("/v1/labelstudio/status").json()["projects"]["6"]
        assert status["ok"] is False and status["problems"] == why
    with TestClient(create_app(make_settings(tmp_path, labelstudio_url=ls_url), predictor=predictor)) as c:
        where, why = _refused_setup(c, body)
        assert where.endswith("/refused/set-TAILOR_LABELSTUDIO_TOKEN") and "TAILOR_LABELSTUDIO_TOKEN" in why[0]
        where, why = _refused_setup(c, {**body, "access_token": "not-the-token"})
        assert where.endswith("/refused/token-refused:set-TAILOR_LABELSTUDIO_TOKEN")
        assert "refused the token Label Studio sent in /setup (HTTP 401)" in why[0]
        assert "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN" in why[0]
        no_match = CONFIG
        for ours, theirs in (('"Top"', '"Shirt"'), ("Skin", "Face"), ("HAIR", "Wig"), ("Trousers", "Jeans"),
                             ("Dress", "Gown"), ('"skirt"', '"Kilt"'), ("Shoes", "Boots")):
            no_match = no_match.replace(ours, theirs)
        where, why = _refused_setup(c, {**body, "access_token": TOKEN, "schema": no_match})
        assert where.endswith("/refused/no-label-matches-a-class:see-TAILOR_LABELSTUDIO_LABEL_MAP")
        r = c.post("/v1/labelstudio/setup", json={**body, "access_token": TOKEN})
        assert r.status_code == 200 and c.get("/v1/labelstudio/status").json()["projects"]["6"]["ok"] is True
