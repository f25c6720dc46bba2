"""POST /v1/predict and its raw variants on real CCP photos: answer shape, encodings, input routes.

Every encoding in the answer is decoded back and compared with the label map, and the three ways
to send a photo (upload, base64, URL) must give the same masks.
"""
from __future__ import annotations

import base64

import numpy as np
import pytest
from tests.conftest import assert_encodings_decode_to, make_settings, png_array, post_image

from models.images import decode_image
from service.api.schemas.predict import PredictResponse
from service.formats import png

ALL_FORMATS = "png,coco_rle,polygons,ls_brush,cvat"


@pytest.fixture(scope="module")
def full_answer(client, photo_bytes):
    r = post_image(client, photo_bytes, formats=ALL_FORMATS, confidence_map="true")
    assert r.status_code == 200, r.text
    return r.json()


def test_answer_describes_model_image_and_classes(full_answer, photos, predictor):
    a = full_answer
    # The route serialises its dict directly (no response-model pass), so check it still is a PredictResponse
    # and carries no null fields.
    assert PredictResponse.model_validate(a).model_dump(exclude_none=True, mode="json") == a
    h, w = decode_image(photos[0]).shape[:2]
    assert (a["width"], a["height"]) == (w, h)
    assert a["model_version"] == predictor.version
    assert a["taxonomy"] == {"name": predictor.taxonomy.name, "tag": predictor.taxonomy.tag}
    assert [a["input_size"]["height"], a["input_size"]["width"]] == list(predictor.size_for(h, w))
    assert 0.0 <= a["difficulty"] <= 1.0
    assert {"decode", "preprocess", "infer", "postprocess", "encode", "total"} <= set(a["timings_ms"])
    assert a["formats"] == ALL_FORMATS.split(",")
    assert sum(c["area"] for c in a["classes"]) == w * h
    names = predictor.taxonomy.names
    for c in a["classes"]:
        assert c["name"] == names[c["id"]] and c["area"] > 0 and 0.0 < c["score"] <= 1.0
    assert any(c["id"] != 0 for c in a["classes"]), "a person photo should show some non-background class"


def test_every_encoding_decodes_to_the_label_map(full_answer, client, photo_bytes):
    a = full_answer
    labels = png.decode(base64.b64decode(a["label_map_png"]))
    h, w = labels.shape
    assert (w, h) == (a["width"], a["height"])
    mask_png = post_image(client, photo_bytes, path="/v1/predict/mask.png")
    np.testing.assert_array_equal(png_array(mask_png.content), labels)
    for c in a["classes"]:
        truth = labels == c["id"]
        assert int(truth.sum()) == c["area"]
        if c["id"] == 0:
            assert c["encodings"] == {}  # background is the absence of a garment
            continue
        enc = c["encodings"]
        assert set(enc) == set(a["formats"])
        assert_encodings_decode_to(enc, truth, c["area"])
    conf = png_array(base64.b64decode(a["confidence_png"]))
    assert conf.shape == (h, w) and conf.min() >= 255 // 13


def test_formats_default_to_none_and_accept_a_json_list(client, photo_bytes):
    bare = post_image(client, photo_bytes).json()
    assert bare["formats"] == [] and "label_map_png" not in bare and "confidence_png" not in bare
    assert all(c["encodings"] == {} for c in bare["classes"])
    r = client.post("/v1/predict", json={"image_base64": base64.b64encode(photo_bytes).decode(),
                                          "formats": ["coco_rle", "COCO_RLE "], "confidence_map": True})
    assert r.status_code == 200, r.text
    assert r.json()["formats"] == ["coco_rle"] and "confidence_png" in r.json()


def test_upload_raw_body_base64_and_url_give_the_same_masks(client, photo_bytes, image_server):
    def classes(r):
        assert r.status_code == 200, r.text
        return [(c["id"], c["area"]) for c in r.json()["classes"]]

    upload = classes(post_image(client, photo_bytes))
    # The bytes as the body (curl --data-binary); the declared type need not match what the bytes are.
    for ctype in ("image/jpeg", "image/png", "application/octet-stream"):
        raw = client.post("/v1/predict", content=photo_bytes, headers={"content-type": ctype},
                          params={"formats": "png"})
        assert classes(raw) == upload and raw.json()["formats"] == ["png"]
    mask = client.post("/v1/predict/mask.png", content=photo_bytes, headers={"content-type": "image/jpeg"})
    np.testing.assert_array_equal(png_array(mask.content),
                                  png_array(post_image(client, photo_bytes, path="/v1/predict/mask.png").content))
    b64 = base64.b64encode(photo_bytes).decode()
    assert classes(client.post("/v1/predict", json={"image_base64": b64})) == upload
    assert classes(client.post("/v1/predict", json={"image_base64": "data:image/jpeg;base64," + b64})) == upload
    assert classes(client.post("/v1/predict", json={"image_url": f"{image_server}/photo.jpg"})) == upload
    # A redirect that stays on the allowed host is followed.
    assert classes(client.post("/v1/predict", json={"image_url": f"{image_server}/hop"})) == upload


def test_overlay_is_a_colour_preview_of_the_photo(client, photo_bytes):
    r = post_image(client, photo_bytes, path="/v1/predict/overlay.png", alpha="0.6")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    overlay = png_array(r.content)
    photo = decode_image(photo_bytes)
    assert overlay.shape == photo.shape
    labels = png_array(post_image(client, photo_bytes, path="/v1/predict/mask.png").content)
    np.testing.assert_array_equal(overlay[labels == 0], photo[labels == 0])  # background untouched
    assert (overlay[labels != 0] != photo[labels != 0]).any()


def test_max_side_caps_the_work_but_masks_keep_the_full_size(tmp_path, predictor, photos):
    from service.drafting.engine import Engine

    image = decode_image(photos[0])
    engine = Engine(predictor, make_settings(tmp_path, max_side=256))
    try:
        capped = engine.predict(image)
    finally:
        engine.close()
    assert capped.labels.shape == image.shape[:2] and capped.confidence.shape == image.shape[:2]
    direct = predictor.predict(image)
    assert capped.input_size == direct.input_size  # the size rule is applied to the capped photo
    assert (capped.labels == direct.labels).mean() > 0.9


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_phone_sized_jpeg_is_decoded_small_and_answered_at_full_size(client, predictor, photos, orientation):
    """A JPEG four times the CCP size is decoded at 1/4 scale (all the model needs); the masks still come
    at its full displayed size and agree with those predicted from the fully decoded photo."""
    import io

    from PIL import Image

    up = Image.open(photos[1]).convert("RGB")
    up = up.resize((up.width * 4, up.height * 4), Image.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    (up if orientation == 1 else up.transpose(Image.Transpose.ROTATE_90)).save(buf, "JPEG", quality=92, exif=exif)
    data = buf.getvalue()
    r = client.post("/v1/predict/mask.png", content=data, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    mask = png_array(r.content)
    assert mask.shape == (up.height, up.width)
    full = predictor.predict(decode_image(data))  # the same photo decoded whole
    assert full.labels.shape == mask.shape
    assert (full.labels == mask).mean() > 0.99
    answer = client.post("/v1/predict", content=data, headers={"content-type": "image/jpeg"}).json()
    assert (answer["height"], answer["width"]) == mask.shape and answer["input_size"]["height"] == 448
