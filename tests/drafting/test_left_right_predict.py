"""The left_right option through the real service, batches, `tailor predict` and the CVAT function.

Every output of a split answer must name and number the split class list (paired classes as <name>_left
/ <name>_right, the person's own sides: their left on the image's right) and decode to the split masks.
"""
from __future__ import annotations

import base64
import csv
import json

import numpy as np
import PIL.Image
import pytest
from tests.conftest import CCP, assert_encodings_decode_to, png_array, post_image, wait_for
from typer.testing import CliRunner

from models.images import decode_image
from service.drafting.left_right import split_left_right, split_taxonomy
from service.formats import coco_rle, png

ALL_FORMATS = "png,coco_rle,polygons,ls_brush,cvat"


@pytest.fixture(scope="module")
def split_names(predictor):
    return split_taxonomy(predictor.taxonomy).names


@pytest.fixture(scope="module")
def plain_mask(client, photo_bytes):
    return png_array(post_image(client, photo_bytes, path="/v1/predict/mask.png").content)


@pytest.fixture(scope="module")
def split_answer(client, photo_bytes):
    r = post_image(client, photo_bytes, formats=ALL_FORMATS, left_right="true")
    assert r.status_code == 200, r.text
    return r.json()


def test_answer_names_the_split_class_list(split_answer, plain_mask, predictor, split_names):
    a = split_answer
    assert a["left_right"] is True and a["class_names"] == split_names
    assert a["taxonomy"]["name"] == f"{predictor.taxonomy.name}-lr"
    assert {"shoes_left", "shoes_right", "pants_left", "pants_right"} <= set(split_names)
    labels = png.decode(base64.b64decode(a["label_map_png"]))
    # The split only renames paired pixels: mapped back to the model's classes it is the plain mask.
    np.testing.assert_array_equal(np.asarray(split_taxonomy(predictor.taxonomy).base_of)[labels], plain_mask)
    np.testing.assert_array_equal(labels, split_left_right(plain_mask, predictor.taxonomy).label_map)
    assert sum(c["area"] for c in a["classes"]) == labels.size
    names = [c["name"] for c in a["classes"]]
    assert "shoes_left" in names and "shoes_right" in names and "shoes" not in names


def test_every_format_decodes_to_the_split_masks(split_answer):
    a = split_answer
    labels = png.decode(base64.b64decode(a["label_map_png"]))
    h, w = labels.shape
    for c in a["classes"]:
        truth = labels == c["id"]
        assert c["name"] == a["class_names"][c["id"]] and int(truth.sum()) == c["area"] and 0 < c["score"] <= 1
        if c["id"] == 0:
            continue
        enc = c["encodings"]
        assert set(enc) == set(ALL_FORMATS.split(","))
        assert_encodings_decode_to(enc, truth, c["area"])


def test_the_option_is_read_from_query_form_and_json_alike(client, photo_bytes, split_answer):
    def classes(r):
        assert r.status_code == 200, r.text
        assert r.json()["left_right"] is True
        return [(c["id"], c["name"], c["area"]) for c in r.json()["classes"]]

    expected = [(c["id"], c["name"], c["area"]) for c in split_answer["classes"]]
    form = client.post("/v1/predict", data={"left_right": "true"}, files={"image": ("p.jpg", photo_bytes)})
    assert classes(form) == expected
    body = client.post("/v1/predict", json={"image_base64": base64.b64encode(photo_bytes).decode(),
                                            "left_right": True})
    assert classes(body) == expected
    plain = post_image(client, photo_bytes).json()
    assert plain["left_right"] is False and "shoes" in plain["class_names"]
    assert client.post("/v1/predict", json={"image_base64": "x", "left_right": "sideways"}).status_code == 422


def test_mask_and_overlay_use_the_split_classes(client, photo_bytes, split_answer, split_names, predictor):
    labels = png.decode(base64.b64decode(split_answer["label_map_png"]))
    for how in ({"params": {"left_right": "true"}}, {"data": {"left_right": "1"}}):
        r = client.post("/v1/predict/mask.png", files={"image": ("p.jpg", photo_bytes)}, **how)
        assert r.status_code == 200
        assert r.headers["x-class-names"].split(",") == split_names
        np.testing.assert_array_equal(png_array(r.content), labels)
    plain = post_image(client, photo_bytes, path="/v1/predict/mask.png")
    assert plain.headers["x-class-names"].split(",") == predictor.taxonomy.names
    r = post_image(client, photo_bytes, path="/v1/predict/overlay.png", alpha="1", left_right="true")
    palette = split_taxonomy(predictor.taxonomy).palette()
    overlay, photo = png_array(r.content), decode_image(photo_bytes)
    np.testing.assert_array_equal(overlay[labels != 0], palette[labels[labels != 0]])  # alpha 1: pure colours
    np.testing.assert_array_equal(overlay[labels == 0], photo[labels == 0])
    assert any((labels == split_names.index(n)).any() for n in ("shoes_right", "pants_right", "legwear_right"))


# Real CCP photos through the served model. Their split (of the ground-truth mask and of the model's
# prediction) was rendered as colour PNGs and checked by eye: each person faces the camera with both feet
# visible, and the shoe and trouser leg on the IMAGE's right are labelled _left (the person's left).
# 0008: man in trousers, shoes touching at the heels; 0021: man in light trousers, legs apart;
# 0058: woman in wide trousers, head tilted off the legs' axis; 0003: woman in knee boots, feet apart.
@pytest.mark.parametrize("image_id, paired", [("0008", ("shoes", "pants")), ("0021", ("shoes", "pants")),
                                              ("0058", ("shoes", "pants")), ("0003", ("shoes",))])
def test_real_photos_person_left_is_image_right(client, image_id, paired):
    r = post_image(client, (CCP / "images" / f"{image_id}.jpg").read_bytes(), formats="png", left_right="true")
    a = r.json()
    labels = png.decode(base64.b64decode(a["label_map_png"]))
    for name in paired:
        left = labels == a["class_names"].index(f"{name}_left")
        right = labels == a["class_names"].index(f"{name}_right")
        floor = 1500 if name == "shoes" else 10000
        assert left.sum() > floor and right.sum() > floor, (name, left.sum(), right.sum())
        assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean() + 20, name


def test_batch_job_masks_classes_and_coco_are_split(client, photos, split_names):
    r = client.post("/v1/batches", data={"formats": "coco_rle", "left_right": "true"},
                    files=[("images", (photos[0].name, photos[0].read_bytes(), "image/jpeg"))])
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    state = wait_for(lambda: (s := client.get(f"/v1/batches/{job_id}").json())["status"] == "done" and s, 120)
    assert state and state["left_right"] is True
    [image] = client.get(f"/v1/batches/{job_id}/results").json()["images"]
    single = post_image(client, photos[0].read_bytes(), formats="coco_rle", left_right="true").json()
    assert image["classes"] == single["classes"] and image["class_names"] == split_names
    mask = png_array(client.get(image["mask_url"]).content)
    coco = client.get(f"/v1/batches/{job_id}/coco.json").json()
    assert [c["name"] for c in coco["categories"]] == split_names[1:]
    for ann in coco["annotations"]:
        np.testing.assert_array_equal(coco_rle.decode(ann["segmentation"]), mask == ann["category_id"])
    assert {split_names[a["category_id"]] for a in coco["annotations"]} >= {"shoes_left", "shoes_right"}


def test_cli_predict_left_right(tmp_path, photos, split_names, plain_mask, predictor):
    from service.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(photos[0]), "--out", str(out), "--threads", "1",
                                      "--left-right"])
    assert result.exit_code == 0, result.output
    mask = png_array((out / "masks" / f"{photos[0].stem}.png").read_bytes())
    np.testing.assert_array_equal(mask, split_left_right(plain_mask, predictor.taxonomy).label_map)
    coco = json.loads((out / "coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == split_names[1:]
    for ann in coco["annotations"]:
        np.testing.assert_array_equal(coco_rle.decode(ann["segmentation"]), mask == ann["category_id"])
    [row] = list(csv.DictReader((out / "summary.csv").open()))
    assert int(row["area_shoes_left"]) == int((mask == split_names.index("shoes_left")).sum()) > 0
    assert "area_shoes" not in row


def test_batch_predict_job_param_is_checked(settings):
    from service.jobs.kinds import validate_params
    from service.store.queue import JobError

    assert validate_params("batch_predict", {"folder": "shoot", "left_right": True}, settings)["left_right"]
    with pytest.raises(JobError, match="left_right"):
        validate_params("batch_predict", {"folder": "shoot", "left_right": "yes"}, settings)


def test_cvat_function_draws_split_labels(predictor, client, photos, split_names, plain_mask):
    from cvat_sdk.auto_annotation.driver import _DetectionFunctionContextImpl
    from cvat_sdk.masks import decode_mask

    from service.integrations.cvat import GarmentMasks

    function = GarmentMasks(predictor=predictor, left_right=True)
    assert [(label.id, label.name) for label in function.spec.labels] == list(enumerate(split_names))[1:]
    context = _DetectionFunctionContextImpl(frame_name="f.jpg", conf_threshold=None, conv_mask_to_poly=False)
    frame = PIL.Image.fromarray(decode_image(photos[0]))
    shapes = function.detect(context, frame)
    remote = GarmentMasks(client=client, left_right=True)  # the same through the service's left_right option
    assert [(s.label_id, s.points) for s in remote.detect(context, frame)] == [(s.label_id, s.points) for s in shapes]
    expected = split_left_right(plain_mask, predictor.taxonomy).label_map
    h, w = expected.shape
    rebuilt = np.zeros_like(expected)
    for shape in shapes:
        rebuilt[decode_mask(shape.points, image_width=w, image_height=h)] = shape.label_id
    np.testing.assert_array_equal(rebuilt, expected)
