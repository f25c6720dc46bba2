"""`tailor predict`: offline masks, one COCO file and a CSV for files and folders of real photos.

A bad file is named on stderr and skipped, the others are still written, and the exit code says so;
the COCO RLEs must decode to exactly the PNG masks written beside them.
"""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
from conftest import png_array
from typer.testing import CliRunner

from service.cli import app
from service.formats import coco_rle


def _run(*args: str):
    result = CliRunner().invoke(app, ["predict", *args, "--threads", "1"])
    result.text = " ".join(result.output.split())  # rich wraps long lines at the test terminal's width
    return result


def test_folder_and_file_with_a_bad_file(tmp_path, photos):
    shoot = tmp_path / "shoot"
    (shoot / "day2").mkdir(parents=True)
    shutil.copy(photos[0], shoot / "a.jpg")
    shutil.copy(photos[1], shoot / "day2" / "a.jpg")  # same name, other folder: must not overwrite
    (shoot / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    result = _run(str(shoot), str(photos[2]), "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "broken.jpg: not a readable image" in result.text and "1 failed" in result.text

    masks = sorted(p.name for p in (out / "masks").glob("*.png"))
    assert masks == sorted(["a.png", "day2__a.png", f"{photos[2].stem}.png"])
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 3 and coco["categories"][0]["name"] == "skin"
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 3
    for image, row in zip(coco["images"], rows):
        labels = png_array((out / row["mask"]).read_bytes())
        assert labels.shape == (image["height"], image["width"]) == (int(row["height"]), int(row["width"]))
        assert abs(float(row["difficulty"]) - image["difficulty"]) < 1e-3
        present = [c for c in np.unique(labels) if c != 0]
        anns = {a["category_id"]: a for a in coco["annotations"] if a["image_id"] == image["id"]}
        assert sorted(anns) == present
        for cid, a in anns.items():
            np.testing.assert_array_equal(coco_rle.decode(a["segmentation"]), labels == cid)
        names = [c["name"] for c in coco["categories"] if c["id"] in anns]
        assert row["classes"].split(";") == names
        assert int(row["area_background"]) == int((labels == 0).sum())


def test_all_good_exits_zero(tmp_path, photos):
    result = _run(str(photos[0]), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "masks" / f"{photos[0].stem}.png").is_file()


def test_nothing_to_predict_is_an_error(tmp_path):
    result = _run(str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "missing.jpg: no such file" in result.text and "no image files" in result.text
