"""Delivery package contents: drawn shapes with known answers, then real CCP photos read back with pycocotools.
Every file the package writes is read back the way a receiver would (PIL, csv, json, pycocotools, zipfile).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from service.drafting.left_right import split_left_right
from service.review.delivery import DeliveryError, DeliveryItem, check_image_id, sanitize_image_id, write_package

from tests.review.delivery.conftest import tree, write_photo

H, W = 40, 60
TOP, SHOES, BAG = 3, 10, 11


def drawn_map() -> np.ndarray:
    lm = np.zeros((H, W), np.uint8)
    lm[5:15, 10:30] = TOP          # 10 x 20 = 200 px, bbox [10, 5, 20, 10]
    lm[20:38, 40:55] = SHOES       # 18 x 15 = 270 px
    lm[30:32, 2:4] = SHOES         # a second piece: 4 px, widens the shoes bbox to x 2..54, y 20..37
    return lm


def drawn_item(tmp_path, image_id="look-1", **kw) -> DeliveryItem:
    photo = write_photo(tmp_path / f"src-{image_id}.jpg", W, H)
    fields = {"approved": True, "annotator": "ann", "reviewer": "rev", "qa_status": "passed",
              "draft_model_version": "v7"}
    fields.update(kw)
    return DeliveryItem(image_id, photo, fields.pop("label_map", drawn_map()), **fields)


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_drawn_shapes_give_exact_coco_labels_and_colours(tmp_path, tax):
    effort = {"changed_px": 120, "pixels": H * W, "changed_fraction": 0.05, "boundary_f": 0.9,
              "mean_iou": 0.8, "class_iou": {"top": 0.9}, "image_id": "look-1", "model_version": "v7"}
    item = drawn_item(tmp_path, effort=effort, notes="fixed the shoe", extra={"correction_id": 42})
    res = write_package([item], tmp_path / "pkg", tax, make_zip=False)
    pkg = tmp_path / "pkg"
    assert (res.images, res.flagged, res.annotations, res.zip_path) == (1, 0, 2, None)
    assert not (tmp_path / "pkg.zip").exists()

    assert (pkg / "images" / "look-1.jpg").read_bytes() == item.image_path.read_bytes()
    with Image.open(pkg / "labels" / "look-1.png") as img:
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), drawn_map())
    with Image.open(pkg / "colour" / "look-1.png") as img:
        colour = np.asarray(img.convert("RGB"))
    pal = tax.palette()
    for cid in (0, TOP, SHOES):
        assert (colour[drawn_map() == cid] == pal[cid]).all()

    coco = json.loads((pkg / "annotations.coco.json").read_text())
    assert coco["images"] == [{"id": 1, "file_name": "look-1.jpg", "width": W, "height": H,
                               "tailor_image_id": "look-1", "label_file": "labels/look-1.png",
                               "colour_file": "colour/look-1.png", "flagged": False}]
    assert [c["id"] for c in coco["categories"]] == list(range(1, tax.num_classes))
    assert {c["name"] for c in coco["categories"]} == set(tax.names[1:])
    anns = {a["category_id"]: a for a in coco["annotations"]}
    assert sorted(anns) == [TOP, SHOES] and [a["id"] for a in coco["annotations"]] == [1, 2]
    assert (anns[TOP]["area"], anns[TOP]["bbox"]) == (200, [10, 5, 20, 10])
    assert (anns[SHOES]["area"], anns[SHOES]["bbox"]) == (274, [2, 20, 53, 18])
    for cid, ann in anns.items():
        rle = ann["segmentation"]
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), drawn_map() == cid)
        assert float(mask_utils.area(rle)) == ann["area"]
        assert list(mask_utils.toBbox(rle)) == ann["bbox"]
        assert ann["flagged"] is False and ann["iscrowd"] == 0

    meta = json.loads((pkg / "metadata.json").read_text())
    row = meta["images"][0]
    assert row["classes_present"] == ["top", "shoes"] and row["class_pixels"] == {"top": 200, "shoes": 274}
    assert row["image_sha256"] == hashlib.sha256(item.image_path.read_bytes()).hexdigest()
    assert row["effort"]["class_iou"] == {"top": 0.9} and row["extra"] == {"correction_id": 42}
    assert meta["classes"][SHOES] == {"id": SHOES, "name": "shoes", "color": list(tax.classes[SHOES].color)}
    assert meta["counts"] == {"images": 1, "flagged": 0, "annotations": 2}

    (csv_row,) = read_csv(pkg / "metadata.csv")
    assert csv_row["image_id"] == "look-1" and csv_row["classes_present"] == "top;shoes"
    assert (csv_row["width"], csv_row["height"], csv_row["flagged"]) == ("60", "40", "false")
    assert (csv_row["annotator"], csv_row["reviewer"], csv_row["qa_status"]) == ("ann", "rev", "passed")
    assert csv_row["draft_model_version"] == "v7" and csv_row["notes"] == "fixed the shoe"
    # Scalars flattened; nested per-class dicts and the columns the row already has are left out.
    assert float(csv_row["effort_changed_fraction"]) == 0.05 and float(csv_row["effort_mean_iou"]) == 0.8
    assert "effort_class_iou" not in csv_row and "effort_image_id" not in csv_row
    assert csv_row["extra_correction_id"] == "42"

    classes = read_csv(pkg / "classes.csv")
    assert [(int(r["id"]), r["name"]) for r in classes] == list(enumerate(tax.names))
    assert tuple(int(classes[TOP][k]) for k in "rgb") == tax.classes[TOP].color

    sums = dict(reversed(line.split("  ", 1)) for line in (pkg / "SHA256SUMS").read_text().splitlines())
    files = tree(pkg)
    assert set(sums) == set(files) - {"SHA256SUMS"}
    assert all(hashlib.sha256(files[p]).hexdigest() == h for p, h in sums.items())
    assert "person's left" not in (pkg / "README.txt").read_text()  # the convention only matters when split


def test_exif_rotated_photo_uses_displayed_size(tmp_path, tax):
    photo = write_photo(tmp_path / "rot.jpg", W, H, orientation=6)  # stored 60 x 40, displayed 40 x 60
    lm = np.zeros((W, H), np.uint8)
    lm[:10, :5] = TOP
    write_package([DeliveryItem("rot", photo, lm, True)], tmp_path / "pkg", tax, make_zip=False)
    coco = json.loads((tmp_path / "pkg" / "annotations.coco.json").read_text())
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (H, W)
    with pytest.raises(DeliveryError, match="40x60 as displayed"):
        write_package([DeliveryItem("rot", photo, lm.T.copy(), True)], tmp_path / "pkg2", tax)
    assert not (tmp_path / "pkg2").exists()


def test_csv_free_text_cannot_run_as_a_formula(tmp_path, tax):
    notes = '=HYPERLINK("http://x","y")'
    write_package([drawn_item(tmp_path, notes=notes, annotator="@me")], tmp_path / "pkg", tax, make_zip=False)
    (row,) = read_csv(tmp_path / "pkg" / "metadata.csv")
    assert (row["notes"], row["annotator"]) == ("'" + notes, "'@me")
    meta = json.loads((tmp_path / "pkg" / "metadata.json").read_text())
    assert (meta["images"][0]["notes"], meta["images"][0]["annotator"]) == (notes, "@me")


def test_flagged_items_are_marked_everywhere(tmp_path, tax):
    ok = drawn_item(tmp_path, "ok")
    pending = drawn_item(tmp_path, "pending", approved=False)
    photo_only = DeliveryItem("no-mask", write_photo(tmp_path / "p.png", 30, 20), None, approved=False)
    res = write_package([ok, pending, photo_only], tmp_path / "pkg", tax, include_unapproved=True)
    pkg = tmp_path / "pkg"
    assert (res.images, res.flagged, res.flagged_ids, res.annotations) == (3, 2, ["pending", "no-mask"], 4)

    coco = json.loads((pkg / "annotations.coco.json").read_text())
    by_name = {i["tailor_image_id"]: i for i in coco["images"]}
    assert by_name["ok"]["flagged"] is False and "flag_reason" not in by_name["ok"]
    assert by_name["pending"]["flagged"] is True and by_name["pending"]["flag_reason"] == "no approved mask"
    assert by_name["no-mask"]["label_file"] is None and by_name["no-mask"]["width"] == 30
    flags = {(a["image_id"], a["flagged"]) for a in coco["annotations"]}
    assert flags == {(by_name["ok"]["id"], False), (by_name["pending"]["id"], True)}

    rows = {r["image_id"]: r for r in read_csv(pkg / "metadata.csv")}
    assert [rows[k]["flagged"] for k in ("ok", "pending", "no-mask")] == ["false", "true", "true"]
    assert rows["pending"]["flag_reason"] == "no approved mask" and rows["ok"]["flag_reason"] == ""
    assert rows["no-mask"]["classes_present"] == ""
    meta = json.loads((pkg / "metadata.json").read_text())
    assert [r["flagged"] for r in meta["images"]] == [False, True, True]
    assert meta["counts"]["flagged"] == 2
    assert sorted(p.name for p in (pkg / "labels").iterdir()) == ["ok.png", "pending.png"]
    assert (pkg / "images" / "no-mask.png").is_file()
    assert "FLAGGED: 2 image(s)" in (pkg / "README.txt").read_text()


def test_real_ccp_photos_read_back_with_pycocotools(tmp_path, tax, ccp_mask, ccp_photo):
    ids = ["0001", "0002", "0003"]
    items = [DeliveryItem(f"ccp-{i}", ccp_photo(i), (lambda i=i: ccp_mask(i)), True, annotator=f"a{n}",
                          reviewer="lead", qa_status="passed", notes=f"photo {i}", draft_model_version="m1",
                          effort={"changed_fraction": 0.01 * n, "mean_iou": 0.9})
             for n, i in enumerate(ids)]
    res = write_package(items, tmp_path / "pkg", tax, batch={"batch_id": "b-17"})
    pkg = tmp_path / "pkg"

    coco = COCO(str(pkg / "annotations.coco.json"))
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    total = 0
    for img in coco.loadImgs(coco.getImgIds()):
        expected = ccp_mask(img["tailor_image_id"][4:])
        assert (img["height"], img["width"]) == expected.shape
        rebuilt = np.zeros_like(expected)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        for ann in anns:
            m = coco.annToMask(ann).astype(bool)
            np.testing.assert_array_equal(m, expected == ann["category_id"])
            assert ann["area"] == int(m.sum())
            rebuilt[m] = ann["category_id"]
        np.testing.assert_array_equal(rebuilt, expected)
        assert {a["category_id"] for a in anns} == set(np.unique(expected)) - {0}
        total += len(anns)
        with Image.open(pkg / img["label_file"]) as lab:
            np.testing.assert_array_equal(np.asarray(lab), expected)
        assert (pkg / "images" / img["file_name"]).read_bytes() == ccp_photo(img["tailor_image_id"][4:]).read_bytes()
    assert res.annotations == total == len(coco.getAnnIds())

    rows = read_csv(pkg / "metadata.csv")
    assert [r["image_id"] for r in rows] == [f"ccp-{i}" for i in ids]
    for n, (row, i) in enumerate(zip(rows, ids)):
        lm = ccp_mask(i)
        assert (int(row["width"]), int(row["height"])) == (lm.shape[1], lm.shape[0])
        assert set(row["classes_present"].split(";")) == {tax.names[c] for c in np.unique(lm) if c}
        assert (row["annotator"], row["notes"], row["qa_status"]) == (f"a{n}", f"photo {i}", "passed")
        assert float(row["effort_changed_fraction"]) == pytest.approx(0.01 * n)
    meta = json.loads((pkg / "metadata.json").read_text())
    assert meta["batch"] == {"batch_id": "b-17"} and meta["left_right"] is False

    with zipfile.ZipFile(res.zip_path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        assert all(n.startswith("pkg/") for n in zf.namelist())
        assert {n[len("pkg/"):]: zf.read(n) for n in names} == tree(pkg)
    assert res.zip_path == tmp_path / "pkg.zip"
    assert res.zip_sha256 == hashlib.sha256(res.zip_path.read_bytes()).hexdigest()


def test_left_right_split_on_a_ccp_photo(tmp_path, tax, ccp_mask, ccp_photo):
    lm = ccp_mask("0003")
    expected = split_left_right(lm, tax)
    res = write_package([DeliveryItem("0003", ccp_photo("0003"), lm, True)], tmp_path / "pkg", tax,
                        left_right=True, make_zip=False)
    pkg = tmp_path / "pkg"
    with Image.open(pkg / "labels" / "0003.png") as img:
        np.testing.assert_array_equal(np.asarray(img), expected.label_map)
    coco = json.loads((pkg / "annotations.coco.json").read_text())
    cats = {c["name"]: c for c in coco["categories"]}
    assert {"shoes_left", "shoes_right", "pants_left", "pants_right"} <= set(cats) and "shoes" not in cats
    assert (cats["shoes_left"]["side"], cats["shoes_right"]["base_class"]) == ("left", "shoes")
    assert cats["shoes_right"]["id"] == expected.names.index("shoes_right")
    anns = {a["category_id"]: a for a in coco["annotations"]}
    for name in ("shoes_left", "shoes_right", "pants_left", "pants_right"):
        cid = expected.names.index(name)
        np.testing.assert_array_equal(mask_utils.decode(anns[cid]["segmentation"]).astype(bool),
                                      expected.label_map == cid)
    assert res.annotations == len(np.unique(expected.label_map)) - 1
    assert coco["info"]["left_right"] is True and "IMAGE's right" in coco["info"]["left_right_convention"]

    meta = json.loads((pkg / "metadata.json").read_text())
    assert meta["taxonomy"]["name"] == "fashion-13-lr" and meta["base_taxonomy"]["name"] == "fashion-13"
    assert [c["name"] for c in meta["classes"]] == expected.names
    assert meta["images"][0]["left_right"]["pixels"] == expected.pixels
    assert {"shoes_left", "shoes_right"} <= set(meta["images"][0]["classes_present"])
    classes = read_csv(pkg / "classes.csv")
    assert [r["name"] for r in classes] == expected.names
    left = classes[expected.names.index("shoes_left")]
    assert (left["base_class"], left["side"]) == ("shoes", "left")
    with Image.open(pkg / "colour" / "0003.png") as img:
        colour = np.asarray(img.convert("RGB"))
    pal = expected.classes.palette()
    for name in ("shoes_left", "shoes_right"):
        cid = expected.names.index(name)
        assert (colour[expected.label_map == cid] == pal[cid]).all()
    assert "the person's left appears on the IMAGE's right" in (pkg / "README.txt").read_text()


def test_extras_are_packaged_and_listed(tmp_path, tax):
    def report(staging):
        (staging / "report").mkdir()
        (staging / "report" / "index.html").write_text("<html>report</html>")

    res = write_package([drawn_item(tmp_path)], tmp_path / "pkg", tax, extras=report)
    pkg = tmp_path / "pkg"
    assert (pkg / "report" / "index.html").read_text() == "<html>report</html>"
    assert "report/" in (pkg / "README.txt").read_text()
    assert "report/index.html" in (pkg / "SHA256SUMS").read_text()
    with zipfile.ZipFile(res.zip_path) as zf:
        assert zf.read("pkg/report/index.html") == b"<html>report</html>"
    assert res.files == len(tree(pkg))


def test_image_ids_are_validated_not_rewritten(tmp_path, tax):
    for bad in ("../x", "a/b", "", ".hidden", "con", "NUL.txt", "x" * 121, "trailing."):
        with pytest.raises(DeliveryError):
            check_image_id(bad)
    with pytest.raises(DeliveryError, match="not usable as a file name"):
        write_package([drawn_item(tmp_path, "ok"), DeliveryItem("a b", tmp_path / "src-ok.jpg", drawn_map(), True)],
                      tmp_path / "pkg", tax)
    assert sanitize_image_id("IMG 0001 (copy).JPG") == "IMG_0001_copy_.JPG"
    assert sanitize_image_id("../../etc/passwd") == "etc_passwd"
    assert sanitize_image_id("con") == "img_con"
    with pytest.raises(DeliveryError, match="duplicate image id 'Look-1'"):
        write_package([drawn_item(tmp_path, "look-1"), drawn_item(tmp_path, "Look-1")], tmp_path / "pkg", tax)
    assert not (tmp_path / "pkg").exists()


def test_bad_label_maps_are_refused(tmp_path, tax):
    big = drawn_map()
    big[0, 0] = tax.num_classes
    with pytest.raises(DeliveryError, match=r"class ids \[13\] are outside"):
        write_package([drawn_item(tmp_path, label_map=big)], tmp_path / "pkg", tax)
    with pytest.raises(DeliveryError, match="declared size 61x40"):
        write_package([drawn_item(tmp_path, width=61, height=40)], tmp_path / "pkg", tax)
    with pytest.raises(DeliveryError, match="integer array"):
        write_package([drawn_item(tmp_path, label_map=drawn_map().astype(float))], tmp_path / "pkg", tax)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src-look-1.jpg"]


def test_zip_mirrors_the_folder_under_one_top_level_folder(tmp_path, tax):
    res = write_package([drawn_item(tmp_path, "a"), drawn_item(tmp_path, "b")], tmp_path / "out" / "delivery-3",
                        tax, zip_path=tmp_path / "zips" / "d3.zip")
    assert res.zip_path == tmp_path / "zips" / "d3.zip" and not (tmp_path / "out" / "delivery-3.zip").exists()
    with zipfile.ZipFile(res.zip_path) as zf:
        assert zf.testzip() is None
        tops = {n.split("/")[0] for n in zf.namelist()}
        files = {n[len("delivery-3/"):]: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
        dirs = {n for n in zf.namelist() if n.endswith("/")}
    assert tops == {"delivery-3"}
    assert files == tree(res.path)
    assert {"delivery-3/images/", "delivery-3/labels/", "delivery-3/colour/"} <= dirs
    assert res.zip_sha256 == hashlib.sha256(res.zip_path.read_bytes()).hexdigest()
    # The photos are stored as they are; text is compressed.
    with zipfile.ZipFile(io.BytesIO(res.zip_path.read_bytes())) as zf:
        assert zf.getinfo("delivery-3/images/a.jpg").compress_type == zipfile.ZIP_STORED
        assert zf.getinfo("delivery-3/metadata.json").compress_type == zipfile.ZIP_DEFLATED
