"""API tokens: writes and administration need one (401 without, 403 with a wrong one), predicting does not,
reads are open unless read_open is off, and with no tokens writes are open only on a loopback address.

Tokens are accepted as Bearer, X-API-Token or the password of HTTP Basic, and compared in constant time.
"""
from __future__ import annotations

import base64

import pytest
from tests.conftest import make_settings, post_image
from fastapi.testclient import TestClient

from service.api.app import create_app

TOKEN, OTHER = "t0ken-for-tests-0123456789", "second-token-abcdefghijkl"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, predictor):
    settings = make_settings(tmp_path_factory.mktemp("auth"), api_tokens=[TOKEN, OTHER], warmup=False)
    with TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False) as c:
        yield c


WRITES = [("post", "/v1/batches"), ("post", "/v1/batches/" + "0" * 32 + "/cancel"),
          ("delete", "/v1/batches/" + "0" * 32), ("post", "/v1/corrections"),
          ("post", "/v1/corrections/1/review"), ("post", "/v1/corrections/export"),
          ("post", "/v1/models/any/activate")]


@pytest.mark.parametrize("method,path", WRITES)
def test_writes_need_a_valid_token(secured, method, path):
    r = secured.request(method, path)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = secured.request(method, path, headers={"Authorization": "Bearer not-the-token-at-all-xx"})
    assert r.status_code == 403, r.text
    # With a valid token the request gets past auth (and fails later on its empty body or unknown id).
    r = secured.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code not in (401, 403), r.text


def test_every_token_form_is_accepted(secured, photo_bytes):
    basic = base64.b64encode(f"labelstudio:{OTHER}".encode()).decode()
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"X-API-Token": OTHER},
                    {"Authorization": f"Basic {basic}"}, {"Authorization": f"Token {TOKEN}"}):
        r = secured.post("/v1/batches", files={"images": ("a.jpg", photo_bytes, "image/jpeg")}, headers=headers)
        assert r.status_code == 202, (headers, r.text)
        job = r.json()["id"]
        assert secured.post(f"/v1/batches/{job}/cancel", headers=headers).status_code == 200
    bad = base64.b64encode(b"labelstudio:wrong").decode()
    assert secured.post("/v1/batches", headers={"Authorization": f"Basic {bad}"}).status_code == 403


def test_predict_and_reads_stay_open(secured, photo_bytes):
    assert post_image(secured, photo_bytes).status_code == 200
    for path in ("/v1/corrections", "/v1/models", "/v1/models/current", "/v1/health/ready"):
        assert secured.get(path).status_code == 200, path


def test_closed_reads(tmp_path, predictor):
    settings = make_settings(tmp_path, api_tokens=[TOKEN], read_open=False, warmup=False)
    with TestClient(create_app(settings, predictor=predictor)) as c:
        assert c.get("/v1/corrections").status_code == 401
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/corrections", headers={"X-API-Token": "wrong-token-0123456789"}).status_code == 403
        assert c.get("/v1/corrections", headers={"X-API-Token": TOKEN}).status_code == 200
        assert c.get("/v1/health/live").status_code == 200  # probes never need a token


def test_no_tokens_means_writes_only_on_loopback(tmp_path, predictor, photo_bytes):
    settings = make_settings(tmp_path, host="0.0.0.0", warmup=False)
    with TestClient(create_app(settings, predictor=predictor)) as c:
        r = c.post("/v1/batches", files={"images": ("a.jpg", photo_bytes, "image/jpeg")})
        assert r.status_code == 403 and "TAILOR_API_TOKENS" in r.json()["detail"]
        assert c.post("/v1/models/x/activate").status_code == 403
        assert post_image(c, photo_bytes).status_code == 200
        assert c.get("/v1/corrections").status_code == 200


def test_token_settings_are_checked(tmp_path, monkeypatch):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 16"):
        make_settings(tmp_path, api_tokens=["short"])
    monkeypatch.setenv("TAILOR_API_TOKENS", f"{TOKEN}, {OTHER}")
    from service.settings import Settings

    assert Settings(_env_file=None).api_tokens == [TOKEN, OTHER]
    assert TOKEN not in repr(Settings(_env_file=None))


def test_comparison_is_constant_time(monkeypatch):
    import hmac

    from service.api import auth

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert auth.token_matches(TOKEN, [TOKEN, OTHER])
    assert len(calls) == 2  # no early exit on the first match
    assert not auth.token_matches(TOKEN[:-1], [TOKEN, OTHER])
