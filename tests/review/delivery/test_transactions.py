"""Delivery packages are all or nothing: refusals and failures part-way leave no folder, zip or temporary
file, an existing package is replaced only when asked, and a failed replacement keeps the old one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.review.delivery import DeliveryError, DeliveryItem, write_package

from tests.review.delivery.conftest import tree, write_photo


def label_map(h=24, w=32, cid=3):
    lm = np.zeros((h, w), np.uint8)
    lm[4:12, 6:20] = cid
    return lm


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    return [write_photo(src / f"p{i}.jpg", 32, 24, seed=i) for i in range(4)]


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "deliveries"
    d.mkdir()
    return d


def items(photos, approved=(True, True, True, True)):
    return [DeliveryItem(f"img{i}", p, label_map(cid=3 + i), ok) for i, (p, ok) in enumerate(zip(photos, approved))]


def test_unapproved_items_are_refused_and_nothing_is_written(photos, dest, tax):
    with pytest.raises(DeliveryError) as err:
        write_package(items(photos, (True, False, True, False)), dest / "pkg", tax)
    assert "2 image(s) have no approved mask: img1, img3" in str(err.value)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("where", ["loader", "label_size", "extras", "extras_rewrites"])
def test_failure_part_way_leaves_nothing_behind(photos, dest, tax, where):
    its = items(photos)
    extras = None
    loaded = []
    if where == "loader":
        def broken():
            raise OSError("mask file vanished")
        # Two items are written in full before the third fails.
        its[2].label_map = broken
        for it in its[:2]:
            it.label_map = (lambda lm=it.label_map: loaded.append(1) or lm)
        expected = OSError
    elif where == "label_size":
        its[3].label_map = label_map(h=25)
        expected = DeliveryError
    elif where == "extras":
        def extras(staging):
            (staging / "report").mkdir()
            (staging / "report" / "half.html").write_text("<html>")
            raise RuntimeError("chart failed")
        expected = RuntimeError
    else:
        def extras(staging):
            (staging / "metadata.json").write_text("{}")
        expected = DeliveryError
    with pytest.raises(expected):
        write_package(its, dest / "pkg", tax, extras=extras)
    assert list(dest.iterdir()) == []  # no folder, no zip, no .tmp- folder or zip
    if where == "loader":
        assert len(loaded) == 2


def test_missing_image_is_refused_before_anything_is_written(photos, dest, tax):
    its = items(photos)
    its[2].image_path = photos[2].with_name("gone.jpg")
    with pytest.raises(DeliveryError, match=r"original image not found for: img2 \(.*gone.jpg\)"):
        write_package(its, dest / "pkg", tax)
    assert list(dest.iterdir()) == []


def test_unreadable_image_part_way_leaves_nothing(photos, dest, tax):
    its = items(photos)
    photos[3].write_bytes(b"not an image")
    with pytest.raises(DeliveryError, match="not a readable image"):
        write_package(its, dest / "pkg", tax)
    assert list(dest.iterdir()) == []


def test_refuses_to_overwrite_then_replaces_when_asked(photos, dest, tax):
    first = write_package(items(photos)[:2], dest / "pkg", tax)
    before_dir, before_zip = tree(dest / "pkg"), first.zip_path.read_bytes()

    with pytest.raises(DeliveryError, match=f"{dest / 'pkg'} already exists and is not empty"):
        write_package(items(photos), dest / "pkg", tax)
    assert tree(dest / "pkg") == before_dir and first.zip_path.read_bytes() == before_zip

    # The folder is free but the zip is not: still refused, still untouched.
    (dest / "other").mkdir()
    (dest / "other.zip").write_bytes(b"someone else's zip")
    with pytest.raises(DeliveryError, match="other.zip already exists"):
        write_package(items(photos), dest / "other", tax)
    assert (dest / "other.zip").read_bytes() == b"someone else's zip" and list((dest / "other").iterdir()) == []

    (dest / "pkg" / "stale.txt").write_text("from an older delivery")
    second = write_package(items(photos), dest / "pkg", tax, overwrite=True)
    assert second.images == 4 and not (dest / "pkg" / "stale.txt").exists()
    assert sorted(p.name for p in (dest / "pkg" / "images").iterdir()) == [f"img{i}.jpg" for i in range(4)]
    assert second.zip_path.read_bytes() != before_zip
    assert sorted(p.name for p in dest.iterdir()) == ["other", "other.zip", "pkg", "pkg.zip"]


def test_failed_overwrite_keeps_the_old_package(photos, dest, tax):
    write_package(items(photos)[:1], dest / "pkg", tax)
    before_dir, before_zip = tree(dest / "pkg"), (dest / "pkg.zip").read_bytes()
    its = items(photos)
    its[1].label_map = label_map(w=31)
    with pytest.raises(DeliveryError, match="img1: label map is 31x24"):
        write_package(its, dest / "pkg", tax, overwrite=True)
    assert tree(dest / "pkg") == before_dir and (dest / "pkg.zip").read_bytes() == before_zip
    assert sorted(p.name for p in dest.iterdir()) == ["pkg", "pkg.zip"]


def test_an_empty_existing_folder_is_used(photos, dest, tax):
    (dest / "pkg").mkdir()
    res = write_package(items(photos), dest / "pkg", tax, make_zip=False)
    assert json.loads((dest / "pkg" / "metadata.json").read_text())["counts"]["images"] == 4
    assert res.zip_path is None and sorted(p.name for p in dest.iterdir()) == ["pkg"]


def test_a_file_in_the_way_is_refused(photos, dest, tax):
    (dest / "pkg").write_text("a file")
    with pytest.raises(DeliveryError, match="exists and is not a folder"):
        write_package(items(photos), dest / "pkg", tax, overwrite=True)
    with pytest.raises(DeliveryError, match="cannot be inside the package folder"):
        write_package(items(photos), dest / "new", tax, zip_path=dest / "new" / "x.zip")
    assert sorted(p.name for p in dest.iterdir()) == ["pkg"]


def test_links_made_by_extras_are_refused(photos, dest, tmp_path, tax):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the customer")

    def extras(staging):
        (staging / "leak.txt").symlink_to(secret)

    with pytest.raises(DeliveryError, match="leak.txt is not a plain file"):
        write_package(items(photos), dest / "pkg", tax, extras=extras)
    assert list(dest.iterdir()) == []


def test_a_rename_failing_at_commit_restores_the_old_package(photos, dest, tax, monkeypatch):
    import service.review.delivery.writer as writer

    write_package(items(photos)[:1], dest / "pkg", tax)
    before_dir, before_zip = tree(dest / "pkg"), (dest / "pkg.zip").read_bytes()
    real_replace = writer.os.replace

    def replace(src, dst):
        # The new folder is already in place when the zip's rename fails (a full disk, a permission).
        if Path(src).name.startswith(".tmp-") and Path(dst) == dest / "pkg.zip":
            raise OSError("simulated rename failure")
        return real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        write_package(items(photos), dest / "pkg", tax, overwrite=True)
    assert tree(dest / "pkg") == before_dir and (dest / "pkg.zip").read_bytes() == before_zip
    assert sorted(p.name for p in dest.iterdir()) == ["pkg", "pkg.zip"]


def test_a_package_appearing_meanwhile_is_not_clobbered(photos, dest, tax):
    def other_writer(staging):
        # Another export creates the same destination while this one is still staging.
        (staging.parent / "pkg").mkdir()
        (staging.parent / "pkg" / "theirs.txt").write_text("theirs")

    with pytest.raises(DeliveryError, match="appeared while the package was being written"):
        write_package(items(photos), dest / "pkg", tax, extras=other_writer)
    assert tree(dest / "pkg") == {"theirs.txt": b"theirs"}
    assert sorted(p.name for p in dest.iterdir()) == ["pkg"]
