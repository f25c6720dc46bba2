"""GET /v1/models/current: the model card as clients need it (version, taxonomy with colours, metrics).

Compared field by field with the model directory's card.json, so the endpoint cannot drift from
the model that is actually loaded.
"""
from __future__ import annotations

import json

from tests.conftest import DEFAULT_MODEL


def test_current_model_states_the_limits_a_client_must_respect(client, settings):
    """The limits reported are the ones enforced: an upload one byte over the stated size is refused."""
    limits = client.get("/v1/models/current").json()["limits"]
    assert limits == {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                      "min_side": settings.min_side, "max_side": settings.max_side,
                      "max_in_flight": settings.max_in_flight,
                      "max_megapixels_in_flight": settings.max_megapixels_in_flight}
    over = client.post("/v1/predict", content=b"\xff" * (limits["max_upload_bytes"] + 1),
                       headers={"content-type": "image/jpeg"})
    assert over.status_code == 413, over.text


def test_current_model_matches_its_card(client):
    card = json.loads((DEFAULT_MODEL / "card.json").read_text())
    r = client.get("/v1/models/current")
    assert r.status_code == 200
    info = r.json()
    assert info["version"] == card["version"]
    assert info["arch"] == card["arch"]
    assert info["metrics"] == card["metrics"]
    assert info["input"]["long_side"] == card["input"]["long_side"]
    assert info["input"]["size_multiple"] == card["input"]["size_multiple"]
    assert "size_rule" in info["input"]
    assert info["backend"] == "onnx" and info["device"] == "cpu"
    int8 = (DEFAULT_MODEL / "model.int8.onnx").is_file()  # served on CPU when the directory has it
    assert info["precision"] == card.get("precision", {"onnx": "fp32", "torch": "fp32"})
    assert info["precision"]["onnx"] == ("int8" if int8 else "fp32")
    assert info["runtime"]["graph"] == ("model.int8.onnx" if int8 else "model.onnx")
    # how ONNX Runtime runs it: the options the server set, not the runtime's defaults
    assert info["runtime"]["graph_optimization"] == "ORT_ENABLE_ALL"
    assert info["runtime"]["allow_spinning"] is False and info["runtime"]["intra_op_threads"] >= 1
    assert set(info["formats"]) == {"png", "coco_rle", "polygons", "ls_brush", "cvat"}
    tax = info["taxonomy"]
    assert tax["tag"] == f"{card['taxonomy']['name']}@{card['taxonomy']['version']}"
    assert [(c["id"], c["name"], c["color"]) for c in tax["classes"]] == \
        [(c["id"], c["name"], c["color"]) for c in card["taxonomy"]["classes"]]


def test_openapi_documents_the_v1_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/predict", "/v1/predict/mask.png", "/v1/predict/overlay.png", "/v1/batches",
              "/v1/batches/{job_id}", "/v1/batches/{job_id}/results", "/v1/batches/{job_id}/cancel",
              "/v1/models/current", "/v1/health/live", "/v1/health/ready"):
        assert p in paths, p
    body = paths["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"image_base64", "image_url", "formats"} <= set(schemas["PredictRequest"]["properties"])
    assert "folder" in schemas["FolderJobRequest"]["properties"]
