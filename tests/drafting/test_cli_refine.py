"""`tailor refine PHOTO EDITS.json --out DIR` on a CCP photo: the files `tailor predict` writes, with the edits
applied; a bad edits file or edit is named with its file, and nothing is written then.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from tests.conftest import CCP, png_array
from typer.testing import CliRunner

from service.cli import app
from service.formats import coco_rle

PHOTO = CCP / "images" / "0002.jpg"  # one large drafted dress
CLICK = {"x": 255, "y": 564, "class": "skirt"}  # inside it


def _run(*args: str):
    result = CliRunner().invoke(app, ["refine", *map(str, args), "--threads", "1"])
    result.text = " ".join(result.output.split())  # rich wraps long lines at the test terminal's width
    return result


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    out = tmp_path_factory.mktemp("predicted")
    assert CliRunner().invoke(app, ["predict", str(PHOTO), "--out", str(out), "--threads", "1"]).exit_code == 0
    return png_array((out / "masks" / "0002.png").read_bytes())


def test_a_click_file_writes_what_predict_writes_with_the_dress_turned_skirt(tmp_path, predicted):
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"edits": [CLICK]}))  # a /v1/refine body works as the file too
    out = tmp_path / "out"
    result = _run(PHOTO, edits, "--out", out)
    assert result.exit_code == 0, result.output
    labels = png_array((out / "masks" / "0002.png").read_bytes())
    coco = json.loads((out / "coco.json").read_text())
    names = [c["name"] for c in coco["categories"]]
    skirt, dress = names.index("skirt") + 1, names.index("dress") + 1
    assert predicted[CLICK["y"], CLICK["x"]] == dress and labels[CLICK["y"], CLICK["x"]] == skirt
    changed = int((labels != predicted).sum())
    assert f"1 edit(s) changed {changed} pixel(s)" in result.text and changed > 10_000
    anns = {a["category_id"]: a for a in coco["annotations"]}
    np.testing.assert_array_equal(coco_rle.decode(anns[skirt]["segmentation"]), labels == skirt)
    row = next(csv.DictReader((out / "summary.csv").open()))
    assert int(row["area_skirt"]) == int((labels == skirt).sum()) and "skirt" in row["classes"].split(";")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("[{", "not valid JSON"),
    ('{"clicks": []}', 'a JSON object needs an "edits" list'),
    (json.dumps([{**CLICK, "class": "skrit"}]), "edit 0: unknown class 'skrit'"),
    (json.dumps([{**CLICK, "x": 5000}]), "edit 0: point (5000, 564) is outside the photo (550x830)"),
])
def test_a_bad_edits_file_is_named_and_nothing_is_written(tmp_path, content, message):
    edits = tmp_path / "edits.json"
    if content is not None:
        edits.write_text(content)
    out = tmp_path / "out"
    result = _run(PHOTO, edits, "--out", out)
    assert result.exit_code == 2 and f"{edits}: {message}" in result.text, result.output
    assert not out.exists()


def test_a_missing_photo_is_named(tmp_path):
    edits = tmp_path / "edits.json"
    edits.write_text("[]")
    result = _run(tmp_path / "nope.jpg", edits, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "nope.jpg: no such file" in result.text
