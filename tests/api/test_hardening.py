"""Hostile and careless input: huge ids, NUL bytes, non-UTF-8 JSON, oversized free text, unreadable files.

Each gets a 4xx with a message, never a 500, and nothing is stored; no answer shows a memory address.
Which reads need a token is a list (docs/security.md) that the route table is checked against.
"""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.conftest import make_settings

from service.api.app import create_app

TOKEN = "hardening-token-0123456789"
HUGE = str(2**63)

# GET routes that answer without a token while read_open is true. Everything else (photos, masks,
# packages, the report) needs one; docs/security.md lists the same routes.
OPEN_READS = {
    "/v1/health/live", "/v1/health/ready", "/metrics", "/v1/models", "/v1/models/current",
    "/v1/batches/{job_id}", "/v1/batches/{job_id}/results", "/v1/batches/{job_id}/coco.json",
    "/v1/batches/{job_id}/masks/{index}.png",
    "/v1/corrections", "/v1/corrections/{correction_id}", "/v1/corrections/{correction_id}/draft.png",
    "/v1/corrections/{correction_id}/qa", "/v1/effort",
    "/v1/jobs", "/v1/jobs/{job_id}", "/v1/promotions",
    "/v1/worklists", "/v1/worklists/{ref}", "/v1/worklists/{ref}/worklist.csv", "/v1/worklists/{ref}/items",
    "/v1/worklists/{ref}/items/{image_id}", "/v1/worklists/{ref}/items/{image_id}/draft.png",
    "/v1/worklists/{ref}/items/{image_id}/qa", "/v1/worklists/{ref}/qa", "/v1/worklists/{ref}/effort",
    "/v1/worklists/{ref}/agreement", "/v1/worklists/{ref}/items/{image_id}/agreement",
}
NOT_API = ("/docs", "/redoc", "/openapi.json", "/v1/labelstudio")


@pytest.fixture(scope="module")
def secured(tmp_path_factory, predictor):
    settings = make_settings(tmp_path_factory.mktemp("hardening"), api_tokens=[TOKEN], warmup=False)
    with TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False) as c:
        yield c


def _get_routes(app) -> list[str]:
    return sorted(p for p, ops in app.openapi()["paths"].items() if "get" in ops and not p.startswith(NOT_API))


def _filled(path: str) -> str:
    return (path.replace("{job_id}", "1").replace("{correction_id}", "1").replace("{index}", "0")
            .replace("{ref}", "1").replace("{image_id}", "a").replace("{dest}", "a"))


def test_export_zip_needs_a_token_even_with_open_reads(secured):
    r = secured.get("/v1/corrections/export.zip")
    assert r.status_code == 401, r.text
    r = secured.get("/v1/corrections/export.zip", headers={"X-API-Token": TOKEN})
    assert r.status_code == 409 and "approved" in r.json()["detail"]  # past auth: nothing approved yet


def test_only_the_listed_reads_are_open(secured):
    paths = _get_routes(secured.app)
    assert OPEN_READS <= set(paths), sorted(OPEN_READS - set(paths))
    for path in paths:
        r = secured.get(_filled(path), params={"key": "k", "a": "x", "b": "y"})
        if path in OPEN_READS:
            assert r.status_code not in (401, 403), (path, r.status_code)
        else:
            assert r.status_code == 401, (path, r.status_code, r.text)
            assert secured.get(_filled(path), headers={"X-API-Token": TOKEN}).status_code != 401, path


ID_ROUTES = [("get", "/v1/corrections/{}"), ("get", "/v1/corrections/{}/mask.png"),
             ("get", "/v1/corrections/{}/draft.png"), ("get", "/v1/corrections/{}/image"),
             ("get", "/v1/corrections/{}/qa"), ("post", "/v1/corrections/{}/review"),
             ("get", "/v1/jobs/{}"), ("post", "/v1/jobs/{}/cancel"), ("get", "/v1/batches/{}"),
             ("get", "/v1/batches/{}/results"), ("get", "/v1/batches/{}/coco.json"),
             ("get", "/v1/batches/1/masks/{}.png"), ("post", "/v1/batches/{}/cancel"), ("delete", "/v1/batches/{}")]


@pytest.mark.parametrize("method,path", ID_ROUTES)
def test_ids_beyond_64_bits_are_a_422(client, method, path):
    body = {"json": {"status": "approved", "reviewer": "r"}} if path.endswith("review") else {}
    r = client.request(method, path.format(HUGE), **body)
    assert r.status_code == 422, r.text
    assert "less than or equal" in r.text


@pytest.mark.parametrize("path", ["/v1/corrections", "/v1/jobs", "/v1/batches/1/results"])
def test_offsets_beyond_64_bits_are_a_422(client, path):
    r = client.get(path, params={"offset": HUGE})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("ref", [HUGE, "\u00b2"])
def test_worklist_refs_that_are_not_ids_are_not_found(client, ref):
    assert client.get(f"/v1/worklists/{ref}").status_code == 404


def test_nul_byte_in_a_batch_folder_is_refused(client):
    r = client.post("/v1/batches", json={"folder": "shoot\u0000"})
    assert r.status_code == 400 and "NUL" in r.json()["detail"]


def test_json_that_is_not_utf8_is_refused(client):
    r = client.post("/v1/batches", content=b'{"folder": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("field,size", [("annotator", 201), ("notes", 10_001), ("external_id", 201),
                                        ("draft_model_version", 101)])
def test_free_text_is_bounded_in_uploads(client, photo_bytes, field, size):
    before = client.get("/v1/corrections").json()["total"]
    h, w = Image.open(io.BytesIO(photo_bytes)).size[::-1]
    files = {"image": ("a.jpg", photo_bytes, "image/jpeg"), "mask": ("m.png", _png(np.zeros((h, w), np.uint8)))}
    r = client.post("/v1/corrections", files=files, data={field: "x" * size})
    assert r.status_code == 422, r.text
    assert field in r.text
    assert client.get("/v1/corrections").json()["total"] == before


@pytest.mark.parametrize("path,body", [
    ("/v1/corrections/1/review", {"status": "approved", "reviewer": "r" * 201}),
    ("/v1/corrections/1/review", {"status": "approved", "reviewer": "r", "notes": "n" * 10_001}),
    ("/v1/worklists", {"name": "w" * 201}), ("/v1/worklists", {"name": "w", "created_by": "c" * 201}),
    ("/v1/jobs", {"kind": "evaluate", "reason": "r" * 10_001}),
    ("/v1/models/x/activate", {"reason": "r" * 10_001}),
])
def test_free_text_is_bounded_in_json(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert "at most" in r.text


def test_messages_show_no_memory_address(client, photo_bytes):
    files = {"image": ("a.jpg", photo_bytes, "image/jpeg"), "mask": ("m.png", b"\x89PNG not really")}
    r = client.post("/v1/corrections", files=files)
    assert r.status_code == 422
    assert "object at 0x" not in r.text and "not a readable PNG" in r.text
    r = client.post("/v1/predict", files={"image": ("x.jpg", b"GIF89a garbage", "image/gif")})
    assert r.status_code == 400 and "object at 0x" not in r.text


def test_worklist_csv_cells_cannot_run_as_formulas(client, photo_bytes):
    name = '=HYPERLINK("http://x","y")'
    assert client.post("/v1/worklists", json={"name": "formulas", "annotators": [name]}).status_code == 201
    r = client.post("/v1/worklists/formulas/images", files={"images": ("-1+2.jpg", photo_bytes, "image/jpeg")})
    assert r.status_code == 201, r.text
    assert client.post("/v1/worklists/formulas/assign", json={}).status_code == 200
    assert client.patch(f"/v1/worklists/formulas/items/{r.json()['added'][0]['image_id']}",
                        json={"notes": "@evil"}).status_code == 200
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/worklists/formulas/worklist.csv").text)))
    assert rows[0]["annotator"] == "'" + name
    assert all(not v.startswith(("=", "+", "-", "@")) for row in rows for v in row.values())


def test_the_report_is_served_with_its_content_security_policy(client):
    from service.review.report.html import CSP

    assert client.post("/v1/worklists", json={"name": "csp"}).status_code == 201
    r = client.get("/v1/worklists/csp/report.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP and "default-src 'none'" in CSP
    assert f'content="{CSP}"' in r.text  # the same policy as the page's own


@pytest.mark.parametrize("path", ["/v1/batches", "/v1/refine", "/v1/predict"])
def test_json_bodies_that_are_not_utf8_are_a_4xx(client, path):
    r = client.post(path, content=b"\x1f\x9d\xffp", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert "UTF-8" in r.text or "utf-8" in r.text


def test_validation_errors_with_raw_bytes_are_answered():
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError

    from service.api import errors

    app = FastAPI()
    errors.install(app, retry_after_s=1)

    @app.post("/bytes")
    def _raise() -> None:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "bad", "input": b"\xff"}])

    r = TestClient(app, raise_server_exceptions=False).post("/bytes")
    assert r.status_code == 422 and r.json()["detail"][0]["input"] == "\ufffd"
