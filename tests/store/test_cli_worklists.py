"""`tailor worklist ...` and `tailor corrections add|review` through the real command line app, on CCP
photos in a temporary data folder: a batch from drafts to QA, effort, agreement and delivery.
Errors must be one line naming the file or worklist, exit code 2, and leave the store unchanged.
"""
from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.conftest import CCP
from models.images import encode_png, read_label_map

IDS = ["0001", "0002", "0003", "0004"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")   # rich tables: keep rows on one line
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in IDS:
        (photos / f"{i}.jpg").write_bytes((CCP / "images" / f"{i}.jpg").read_bytes())
    return tmp_path


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def mask_file(tmp_path, ccp_pair, image_id: str, change=None):
    labels = ccp_pair(image_id)[1]
    if change is not None:
        labels = change(labels.copy())
    path = tmp_path / f"mask-{image_id}-{abs(hash(str(change)))}.png"
    path.write_bytes(encode_png(labels))
    return path, labels


def test_a_batch_from_drafts_to_delivery(env, tax, ccp_pair):
    photos = env / "photos"
    r = run("worklist", "create", "shop", photos, "--annotators", "ann,bob")
    assert r.exit_code == 0, r.output
    assert "4 photos drafted" in r.output and "ann:" in r.output and "bob:" in r.output

    r = run("worklist", "csv", "shop", "-o", env / "shop.csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((env / "shop.csv").open()))
    assert sorted(r["image_id"] for r in rows) == IDS and {r["annotator"] for r in rows} == {"ann", "bob"}

    ids = {}
    for image_id in ("0001", "0002"):
        mask, _ = mask_file(env, ccp_pair, image_id)
        r = run("corrections", "add", photos / f"{image_id}.jpg", mask, "--annotator", "ann")
        assert r.exit_code == 0, r.output
        ids[image_id] = int(r.output.split()[1].rstrip(":"))
    shoes = tax.class_id("shoes")

    def socks_for_shoes(m):
        m[m == shoes] = tax.class_id("socks")
        return m

    mask, _ = mask_file(env, ccp_pair, "0001", socks_for_shoes)
    assert run("corrections", "add", photos / "0001.jpg", mask, "--annotator", "bob").exit_code == 0
    r = run("corrections", "review", ids["0002"], "--status", "approved", "--reviewer", "rita")
    assert r.exit_code == 0 and "approved by rita" in r.output

    r = run("worklist", "qa", "shop", "--json")
    assert r.exit_code == 0, r.output
    qa = {row["image_id"]: row for row in json.loads(r.output)["images"]}
    assert qa["0002"]["correction"]["status"] == "approved" and qa["0003"]["correction"] is None
    assert qa["0002"]["checklist"] is not None and qa["0002"]["effort"]["changed_fraction"] > 0
    assert run("worklist", "qa", "shop").exit_code == 0

    r = run("worklist", "set", "shop", "0002", "--qa-status", "passed", "--notes", "clean")
    assert r.exit_code == 0 and "QA passed" in r.output
    r = run("worklist", "set", "shop", "0002", "--qa-status", "done")
    assert r.exit_code == 2 and "qa_status must be one of" in r.output
    shown = json.loads(run("worklist", "show", "shop", "--json").output)
    assert next(i for i in shown["items"] if i["image_id"] == "0002")["notes"] == "clean"

    r = run("worklist", "effort", "shop", "--json")
    effort = json.loads(r.output)
    assert effort["corrections"] == 3   # ann on 0001 and 0002, bob on 0001
    r = run("worklist", "agreement", "shop", "--json")
    pairs = json.loads(r.output)["pairs"]
    assert len(pairs) == 1 and pairs[0]["image_id"] == "0001" and pairs[0]["class_iou"]["shoes"] == 0.0

    r = run("worklist", "deliver", "shop", env / "pkg")
    assert r.exit_code == 2 and "no approved mask" in r.output and "0001" in r.output
    assert not (env / "pkg").exists() and not (env / "pkg.zip").exists()
    r = run("worklist", "deliver", "shop", env / "pkg", "--approved-only", "--left-right")
    assert r.exit_code == 0, r.output
    meta = json.loads((env / "pkg" / "metadata.json").read_text())
    assert [row["image_id"] for row in meta["images"]] == ["0002"]
    assert "shoes_left" in (env / "pkg" / "classes.csv").read_text()
    with zipfile.ZipFile(env / "pkg.zip") as zf:
        assert "pkg/report/report.html" in zf.namelist()
    r = run("worklist", "report", "shop", env / "report")
    assert r.exit_code == 0 and (env / "report" / "report.html").is_file()
    r = run("worklist", "report", "shop", env / "report")
    assert r.exit_code == 2 and "report" in r.output


def test_cli_errors_name_the_file_and_change_nothing(env, ccp_pair):
    r = run("worklist", "create", "x", env / "nowhere")
    assert r.exit_code == 2 and "nowhere" in r.output
    (env / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    r = run("worklist", "create", "x", env / "photos")
    assert r.exit_code == 2 and "broken.jpg" in r.output and "nothing was added" in r.output
    assert "x" not in run("worklist", "list", "--json").output
    assert run("worklist", "show", "nope").exit_code == 2
    mask, labels = mask_file(env, ccp_pair, "0001")
    small = env / "small.png"
    small.write_bytes(encode_png(labels[:100, :100]))
    r = run("corrections", "add", env / "photos" / "0001.jpg", small)
    assert r.exit_code == 2 and "small.png" in r.output
    assert np.array_equal(read_label_map(mask), labels)
