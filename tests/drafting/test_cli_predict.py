"""`tailor predict`: offline masks, one COCO file and a CSV for files and folders of real photos.

A bad file is named on stderr and skipped, the others are still written, and the exit code says so;
the COCO RLEs must decode to exactly the PNG masks written beside them.
"""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from tests.conftest import png_array
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


def test_heic_photos_in_a_folder_are_drafted(tmp_path, photos):
    from PIL import Image

    import models.images  # noqa: F401  (registers Pillow's HEIF plugin, here to write the test photo)

    shoot = tmp_path / "iphone"
    shoot.mkdir()
    with Image.open(photos[0]) as img:
        img.save(shoot / "IMG_0001.HEIC", format="HEIF", quality=90)
        size = img.size
    result = _run(str(shoot), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert png_array((tmp_path / "out" / "masks" / "IMG_0001.png").read_bytes()).shape == (size[1], size[0])


def test_nothing_to_predict_is_an_error(tmp_path):
    result = _run(str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "missing.jpg: no such file" in result.text and "no image files" in result.text


def test_concurrent_drafts_write_what_one_at_a_time_writes(tmp_path, ccp, predictor):
    """Photos in work at once overlap decoding and writing with the model; the files must not depend on it:
    the same masks, COCO (ids in input order, failures skipped) and CSV as one photo at a time."""
    from service.drafting.batch import predict_files
    from service.drafting.engine import Engine

    from tests.conftest import make_settings

    photos = sorted((ccp / "images").glob("*.jpg"))[10:17]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    inputs = [(p, p.stem) for p in photos[:3]] + [(broken, "broken")] + [(p, p.stem) for p in photos[3:]]
    engine = Engine(predictor, make_settings(tmp_path))
    try:
        serial = predict_files(engine, inputs, tmp_path / "serial", concurrency=1)
        overlapped = predict_files(engine, inputs, tmp_path / "overlapped", concurrency=3)
    finally:
        engine.close()
    assert serial.written == overlapped.written and len(serial.written) == 7
    assert serial.failures == overlapped.failures and [p for p, _ in serial.failures] == [str(broken)]
    for name in ("coco.json", "summary.csv", *serial.written):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "overlapped" / name).read_bytes(), name
    coco = json.loads((tmp_path / "serial" / "coco.json").read_text())
    assert [im["id"] for im in coco["images"]] == list(range(1, 8))
    assert [im["file_name"] for im in coco["images"]] == [str(p) for p in photos]


def test_a_cancelled_run_stops_taking_photos(tmp_path, ccp, predictor):
    from service.drafting.batch import predict_files
    from service.drafting.engine import Engine

    from tests.conftest import make_settings

    photos = sorted((ccp / "images").glob("*.jpg"))[:16]

    class Cancelled(Exception):
        pass

    def cancel(_path, _error):
        raise Cancelled

    engine = Engine(predictor, make_settings(tmp_path))
    try:
        with pytest.raises(Cancelled):
            predict_files(engine, [(p, p.stem) for p in photos], tmp_path / "out", on_step=cancel, concurrency=2)
    finally:
        engine.close()
    # The first result, and at most the 2 x 2 photos already queued behind it, were drafted.
    assert 1 <= len(list((tmp_path / "out" / "masks").glob("*.png"))) <= 5
