"""CORS: browser pages on the configured origins may call the API; by default no origin may.

Preflight and real requests through the app, as a browser sends them, with and without the setting,
and a malformed origin refused when the settings are read.
"""
from __future__ import annotations

import pytest
from tests.conftest import make_settings
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.api.app import create_app

TOOL = "https://tool.example.com"
PREFLIGHT = {"Origin": TOOL, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}


def test_listed_origins_may_call_the_api(tmp_path, predictor, photo_bytes):
    app = create_app(make_settings(tmp_path, cors_origins=f"{TOOL},http://localhost:8080"), predictor=predictor)
    with TestClient(app) as c:
        pre = c.options("/v1/predict", headers=PREFLIGHT)
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == TOOL
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        r = c.post("/v1/predict/mask.png", headers={"Origin": TOOL}, files={"image": ("p.jpg", photo_bytes)})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == TOOL
        exposed = r.headers["access-control-expose-headers"].lower()
        assert {"x-request-id", "x-class-names", "retry-after"} <= set(exposed.split(", "))
        other = c.options("/v1/predict", headers={**PREFLIGHT, "Origin": "https://elsewhere.example.org"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


def test_no_origin_is_allowed_by_default(client, photo_bytes):
    r = client.post("/v1/predict", headers={"Origin": TOOL}, files={"image": ("p.jpg", photo_bytes)})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in client.options("/v1/predict", headers=PREFLIGHT).headers


@pytest.mark.parametrize("origin", ["tool.example.com", "https://tool.example.com/", "https://*.example.com",
                                    "ftp://tool.example.com"])
def test_a_malformed_origin_stops_startup(tmp_path, origin):
    with pytest.raises(ValidationError, match="cors_origins"):
        make_settings(tmp_path, cors_origins=origin)
