"""Self-training data: a teacher's test-time-augmented drafts of unlabeled photos, unsure pixels ignored,
written atomically, and a student run that trains on them beside the real masks.
"""
import json

import numpy as np
import pytest

from training.dataset import IGNORE
from training.config import TrainConfig
from training.dataset import DatasetError
from models.images import decode_image, read_label_map
from training.pseudo_label import load_pseudo_pairs, tta_probabilities, write_pseudo_labels
from training.quantize import ort_session
from training.train import train


@pytest.fixture(scope="module")
def unlabeled(ccp, tmp_path_factory):
    """Three real unlabeled CCP photos at a quarter of their size."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("unlabeled")
    for path in sorted((ccp / "unlabeled").glob("*.jpg"))[:3]:
        with Image.open(path) as im:
            im.convert("RGB").resize((im.width // 4, im.height // 4)).save(folder / path.name, quality=92)
    return folder


def test_writes_a_mask_per_photo_with_unsure_pixels_ignored(tiny_model, unlabeled, tmp_path):
    out = tmp_path / "pseudo"
    manifest = write_pseudo_labels(tiny_model, unlabeled, out, min_confidence=0.5, threads=2)
    assert manifest["images"] == 3 and manifest["flip"] and manifest["scales"] == [0.75, 1.0, 1.25]
    shares = []
    for photo in sorted(unlabeled.iterdir()):
        mask = read_label_map(out / "masks" / f"{photo.stem}.png")
        assert mask.shape == decode_image(photo).shape[:2]
        assert set(np.unique(mask)) <= set(range(13)) | {IGNORE}
        shares.append((mask != IGNORE).mean())
    assert manifest["kept_pixel_share"] == pytest.approx(np.mean(shares), abs=0.01)
    # The undertrained tiny teacher is unsure of much; at the lowest possible bar nothing is ignored.
    everything = write_pseudo_labels(tiny_model, unlabeled, tmp_path / "all", min_confidence=1 / 13, threads=2)
    assert everything["kept_pixel_share"] == 1.0 > manifest["kept_pixel_share"]
    assert json.loads((out / "pseudo.json").read_text())["teacher"]["version"] == manifest["teacher"]["version"]


def test_tta_of_a_mirrored_photo_is_the_mirrored_tta(tiny_model, unlabeled):
    """Averaging over flips makes the teacher exactly mirror-symmetric."""
    card = json.loads((tiny_model / "card.json").read_text())
    session = ort_session(tiny_model / "model.onnx", threads=2)
    run = lambda x: session.run(None, {"image": x})[0]  # noqa: E731
    photo = decode_image(next(unlabeled.iterdir()))
    photo = photo[:, : photo.shape[1] // 32 * 32]  # sides the size rule keeps exactly under a mirror
    probs = tta_probabilities(run, photo, card["input"], scales=(1.0,))
    mirrored = tta_probabilities(run, np.ascontiguousarray(photo[:, ::-1]), card["input"], scales=(1.0,))
    np.testing.assert_allclose(mirrored, probs[..., ::-1], atol=1e-5)
    assert np.allclose(probs.sum(axis=0), 1, atol=1e-5)


def test_refuses_and_leaves_nothing_behind(tiny_model, tmp_path, unlabeled):
    with pytest.raises(DatasetError, match="no .jpg/.jpeg/.png photos"):
        write_pseudo_labels(tiny_model, tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        write_pseudo_labels(tiny_model, unlabeled, tmp_path / "exists")
    with pytest.raises(DatasetError, match="not a pseudo-label folder"):
        load_pseudo_pairs(unlabeled, "fashion-13", 13)


def test_student_trains_on_real_and_pseudo_labels(tiny_model, tiny_data, tiny_config_file, unlabeled, tmp_path):
    pseudo = tmp_path / "pseudo"
    write_pseudo_labels(tiny_model, unlabeled, pseudo, min_confidence=0.3, threads=2)
    cfg = TrainConfig.from_file(tiny_config_file, epochs=1, pseudo_labels=str(pseudo), pseudo_ratio=1.0)
    logs = []
    state = train(tiny_data, tmp_path / "student", cfg, log=logs.append)
    # 12 real photos and as many pseudo-labelled draws: 24 crops, 6 steps of 4.
    assert state["step"] == 6
    assert state["pseudo_labels"]["images"] == 3 and state["pseudo_labels"]["min_confidence"] == 0.3
    assert any("pseudo labels: 3 photos" in str(line) for line in logs)
    with pytest.raises(DatasetError, match="taxonomy"):
        (pseudo / "pseudo.json").write_text(json.dumps({**json.loads((pseudo / "pseudo.json").read_text()),
                                                        "taxonomy": "other"}))
        load_pseudo_pairs(pseudo, "fashion-13", 13)


def test_cli_writes_the_folder_and_names_bad_input(tiny_model, unlabeled, tmp_path):
    from typer.testing import CliRunner

    from service.cli import app

    out = tmp_path / "pseudo"
    args = ["pseudo-label", "--photos", str(unlabeled), "--out", str(out), "--model", str(tiny_model),
            "--scales", "1.0", "--no-flip", "--threads", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 photos drafted" in " ".join(result.output.split())
    assert json.loads((out / "pseudo.json").read_text())["scales"] == [1.0]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    bad = CliRunner().invoke(app, ["pseudo-label", "--photos", str(unlabeled), "--out", str(tmp_path / "other"),
                                   "--model", str(tiny_model), "--scales", "one"])
    assert bad.exit_code == 2 and "--scales" in bad.output and not (tmp_path / "other").exists()
