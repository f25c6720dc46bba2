"""`tailor evaluate` on folders whose answers are known in advance.

Ground truth made from the model's own predictions must score 1.0; relabelling one class in it
must lower that class's IoU to exactly the value counted by hand from the arrays.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from service.drafting.predictor import Predictor
from service.jobs.evaluate import evaluate
from tests.conftest import REPO
from models.images import decode_image


@pytest.fixture(scope="module")
def self_labelled(tiny_model, ccp, tmp_path_factory):
    """A folder of 3 real photos whose masks are the tiny model's own predictions (class-name labels)."""
    root = tmp_path_factory.mktemp("known")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    pred = Predictor(tiny_model, backend="onnx")
    (root / "labels.txt").write_text("\n".join(pred.taxonomy.names) + "\n")
    masks = {}
    for i in ("0011", "0012", "0013"):
        src = ccp / "images" / f"{i}.jpg"
        (root / "images" / f"{i}.jpg").write_bytes(src.read_bytes())
        masks[i] = pred.predict(decode_image(src)).labels
        Image.fromarray(masks[i]).save(root / "masks" / f"{i}.png")
    return root, masks


def test_own_predictions_score_perfectly(tiny_model, self_labelled):
    root, _ = self_labelled
    r = evaluate(tiny_model, root, show_progress=False)
    assert r["miou"] == pytest.approx(1.0) and r["pixel_accuracy"] == pytest.approx(1.0)
    assert r["changed_pixel_fraction"] == pytest.approx(0.0) and r["images"] == 3


def test_relabelled_region_gives_hand_counted_iou(tiny_model, self_labelled, tmp_path):
    root, masks = self_labelled
    import shutil

    work = tmp_path / "d"
    shutil.copytree(root, work)
    m = masks["0011"].copy()
    present = [c for c in np.unique(np.concatenate([v.ravel() for v in masks.values()])) if c != 0]
    cls = int(present[0])
    changed = m[:200] == cls           # truth now says background where the model says `cls`
    m[:200][changed] = 0
    Image.fromarray(m).save(work / "masks" / "0011.png")
    total_cls = sum(int((v == cls).sum()) for v in masks.values())
    n = int(changed.sum())
    total_px = sum(v.size for v in masks.values())
    total_bg = sum(int((v == 0).sum()) for v in masks.values())
    r = evaluate(tiny_model, work, show_progress=False)
    name = r["per_class"]
    cls_name = list(name)[cls]
    assert n > 0
    assert name[cls_name] == pytest.approx((total_cls - n) / total_cls)
    assert name["background"] == pytest.approx(total_bg / (total_bg + n))
    assert r["pixel_accuracy"] == pytest.approx(1 - n / total_px)


def test_cli_prints_table_and_writes_json(tiny_model, self_labelled, tmp_path):
    root, _ = self_labelled
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "service.cli", "evaluate", "--model", str(tiny_model), "--data",
                           str(root), "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mIoU" in proc.stdout and "pixel accuracy" in proc.stdout
    data = json.loads(out.read_text())
    assert {"miou", "pixel_accuracy", "per_class", "changed_pixel_fraction", "images"} <= set(data)
    assert data["miou"] == pytest.approx(1.0)


def test_cli_error_names_the_file(tiny_model, self_labelled, tmp_path):
    import shutil

    root, _ = self_labelled
    work = tmp_path / "d"
    shutil.copytree(root, work)
    (work / "masks" / "0012.png").unlink()
    proc = subprocess.run([sys.executable, "-m", "service.cli", "evaluate", "--model", str(tiny_model), "--data",
                           str(work)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "0012.jpg" in proc.stderr and "has no mask" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_on_its_own_training_folder_only_the_val_split_counts(tiny_model, tiny_data, self_labelled):
    from training.dataset import scan_dataset

    _, val = scan_dataset(tiny_data).split(25.0)  # the tiny config's val_percent
    auto = evaluate(tiny_model, tiny_data, show_progress=False, split="auto")
    assert auto["split"] == "val" and auto["images"] == len(val) == 3
    assert evaluate(tiny_model, tiny_data, show_progress=False, split="all")["images"] == 16
    other = evaluate(tiny_model, self_labelled[0], show_progress=False, split="auto")
    assert other["split"] == "all" and other["images"] == 3  # another folder: every photo
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(tiny_model, tiny_data, show_progress=False, split="test")
