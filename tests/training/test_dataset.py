"""Dataset folders: pairing, sizes, label ids, unreadable files, EXIF orientation, the split.

Every error must name the offending file, because the person fixing it has a folder of hundreds.
"""
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_small_copy
from models.taxonomy import load_taxonomy
from training.dataset import DatasetError, load_samples, scan_dataset, split_bucket

TAX = load_taxonomy("fashion-13")


@pytest.fixture
def small(ccp, tmp_path):
    return make_small_copy(ccp, tmp_path / "d", ["0001", "0002", "0003"])


def load_all(root):
    folder = scan_dataset(root)
    return list(load_samples(folder, folder.samples, TAX))


def test_real_folder_loads_with_mapping(small, ccp):
    (s, image, mask), *_ = load_all(small)
    assert image.dtype == np.uint8 and image.shape[2] == 3 and mask.shape == image.shape[:2]
    raw = np.asarray(Image.open(small / "masks" / "0001.png"))
    labels = (ccp / "labels.txt").read_text().split()
    # every skin pixel in the source becomes class "skin", every jeans/pants pixel "pants"
    assert (mask[raw == labels.index("skin")] == TAX.class_id("skin")).all()
    assert set(np.unique(mask)) <= set(range(13))


def test_image_without_mask(small):
    (small / "masks" / "0002.png").unlink()
    with pytest.raises(DatasetError, match=r"0002\.jpg: image has no mask"):
        scan_dataset(small)


def test_mask_without_image(small):
    (small / "images" / "0003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"0003\.png: mask has no image"):
        scan_dataset(small)


def test_size_mismatch_names_mask(small):
    Image.open(small / "masks" / "0002.png").resize((10, 10), Image.NEAREST).save(small / "masks" / "0002.png")
    with pytest.raises(DatasetError, match=r"0002\.png: mask is 10x10 but image 0002\.jpg"):
        load_all(small)


def test_label_id_beyond_labels_txt(small):
    m = np.asarray(Image.open(small / "masks" / "0001.png")).copy()
    m[0, :3] = [59, 60, 200]
    Image.fromarray(m).save(small / "masks" / "0001.png")
    with pytest.raises(DatasetError, match=r"0001\.png: label ids \[59, 60, 200\] are not in labels.txt"):
        load_all(small)


def test_unreadable_image_named(small):
    (small / "images" / "0002.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"0002\.jpg: not a readable image"):
        load_all(small)


def test_truncated_mask_named(small):
    data = (small / "masks" / "0003.png").read_bytes()
    (small / "masks" / "0003.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"0003\.png"):
        load_all(small)


def test_missing_labels_txt(small):
    (small / "labels.txt").unlink()
    with pytest.raises(DatasetError, match="labels.txt is missing"):
        scan_dataset(small)


def test_two_files_same_id(small):
    shutil.copy(small / "images" / "0001.jpg", small / "images" / "0001.png")
    with pytest.raises(DatasetError, match="share the id '0001'"):
        scan_dataset(small)


def test_exif_orientation_applied(small):
    """A photo stored sideways with Orientation=6 is decoded upright: its mask has the upright size."""
    path = small / "images" / "0001.jpg"
    upright = Image.open(path).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera writes before tagging "rotate 270"
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, exif=exif, quality=95)
    (s, image, mask), *_ = load_all(small)
    assert image.shape[:2] == (upright.height, upright.width)
    diff = np.abs(image.astype(int) - np.asarray(upright).astype(int)).mean()
    assert diff < 4, f"decoded photo differs from the upright original by {diff:.1f} grey levels"


def test_split_is_deterministic_and_by_id(ccp):
    folder = scan_dataset(ccp)
    train, val = folder.split(10.0)
    assert len(train) + len(val) == 900 and 50 < len(val) < 130
    assert [s.id for s in folder.split(10.0)[1]] == [s.id for s in val]
    # an image's side depends on its id alone, not on which other images are present
    folder.samples = folder.samples[::3]
    assert {s.id for s in folder.split(10.0)[1]} == {s.id for s in val if s in folder.samples}
    assert all(0 <= split_bucket(s.id) < 100 for s in val)


def test_fingerprint_changes_with_content(small):
    before = scan_dataset(small).fingerprint()
    m = np.asarray(Image.open(small / "masks" / "0001.png")).copy()
    m[0, 0] = (m[0, 0] + 1) % 59
    Image.fromarray(m).save(small / "masks" / "0001.png")
    assert scan_dataset(small).fingerprint() != before
