"""The store API on real CCP photos: save (dedup, validation, atomicity), update by external id, review,
list filters and the export that `tailor train`'s dataset reader accepts as is.

Every refusal is checked to leave the database and the data folder exactly as they were.
"""
from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image

from service.store import corrections as api
from service.store.export import export_approved
from service.store.tables import utcnow
from tests.store.helpers import snapshot


def save(store, tax, image_bytes, labels, **kw):
    with store.session() as s:
        return api.save_correction(s, store.files, image_bytes=image_bytes, label_map=labels, taxonomy=tax,
                                   source=kw.pop("source", "rest"), **kw)


def test_save_stores_image_once_and_keeps_draft(store, tax, ccp_pair):
    img, labels = ccp_pair("0001")
    draft = labels.copy()
    draft[:50] = 0
    c1 = save(store, tax, img, labels, annotator="ann", draft_labels=draft, draft_model_version="v1", notes="n")
    c2 = save(store, tax, img, labels, annotator="other")
    assert c1.image_sha256 == c2.image_sha256 and c1.id != c2.id
    assert len(list((store.files.root / "images").rglob("*.jpg"))) == 1  # stored once by content hash
    with store.session() as s:
        got = api.get_correction(s, c1.id)
        assert (got.image.height, got.image.width) == labels.shape
        assert got.taxonomy == tax.tag and got.status == "submitted" and got.source == "rest"
        assert got.draft_model_version == "v1"
        assert got.draft_changed_fraction == pytest.approx(np.mean(draft != labels))
        np.testing.assert_array_equal(api.load_label_map(store.files, got), labels)
        np.testing.assert_array_equal(api.load_label_map(store.files, got, draft=True), draft)
    assert (store.files.root / c1.image.path).read_bytes() == img


def test_second_correction_can_name_a_stored_image_by_hash(store, tax, ccp_pair):
    img, labels = ccp_pair("0002")
    first = save(store, tax, img, labels)
    with store.session() as s:
        again = api.save_correction(s, store.files, image_sha256=first.image_sha256, label_map=labels,
                                    taxonomy=tax, source="cvat")
    assert again.image_sha256 == first.image_sha256


@pytest.mark.parametrize("case", ["wrong_size", "unknown_class", "not_an_image", "unknown_hash", "bad_source",
                                  "float_mask", "draft_wrong_size"])
def test_refusals_leave_nothing_behind(store, tax, ccp_pair, case):
    img, labels = ccp_pair("0003")
    save(store, tax, ccp_pair("0001")[0], ccp_pair("0001")[1])  # some existing content
    before = snapshot(store)
    kw = {"image_bytes": img, "label_map": labels, "source": "rest"}
    if case == "wrong_size":
        kw["label_map"] = labels[:-1]
    elif case == "unknown_class":
        kw["label_map"] = labels.copy()
        kw["label_map"][5, 5] = tax.num_classes
    elif case == "not_an_image":
        kw["image_bytes"] = b"GIF89a not really"
    elif case == "unknown_hash":
        kw = {**kw, "image_bytes": None, "image_sha256": "ab" * 32}
    elif case == "bad_source":
        kw["source"] = "email"
    elif case == "float_mask":
        kw["label_map"] = labels.astype(np.float32)
    elif case == "draft_wrong_size":
        kw["draft_labels"] = labels[:, :-3]
    with store.session() as s, pytest.raises(api.CorrectionError) as err:
        api.save_correction(s, store.files, taxonomy=tax, **kw)
    assert str(err.value)
    assert snapshot(store) == before


def test_mask_size_is_the_upright_size(store, tax, ccp_pair):
    # A photo stored sideways with EXIF "rotate 90": the annotator drew on the upright (W x H swapped) view.
    img, labels = ccp_pair("0004")
    pil = Image.open(io.BytesIO(img))
    exif = pil.getexif()
    exif[274] = 6
    buf = io.BytesIO()
    pil.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", exif=exif)
    with pytest.raises(api.CorrectionError, match="displayed"):
        save(store, tax, buf.getvalue(), labels.T.copy())
    assert save(store, tax, buf.getvalue(), labels).image.width == labels.shape[1]


def test_failure_during_commit_rolls_back_and_removes_staged_files(store, tax, ccp_pair, monkeypatch):
    img, labels = ccp_pair("0005")
    before = snapshot(store)
    from sqlalchemy.orm import Session

    def broken_commit(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Session, "commit", broken_commit)
    with pytest.raises(RuntimeError, match="disk full"):
        save(store, tax, img, labels)
    monkeypatch.undo()
    assert snapshot(store) == before
    assert not list(store.files.root.rglob(".tmp-*"))


def test_external_id_updates_the_same_correction(store, tax, ccp_pair):
    img, labels = ccp_pair("0006")
    first = save(store, tax, img, labels, source="labelstudio", external_id="ann-17", annotator="a")
    with store.session() as s:
        api.review(s, first.id, "approved", "rev")
    fixed = labels.copy()
    fixed[:20, :20] = 3
    second = save(store, tax, img, fixed, source="labelstudio", external_id="ann-17", annotator="a")
    assert second.id == first.id
    with store.session() as s:
        assert api.count_corrections(s) == 1
        got = api.get_correction(s, first.id)
        assert got.status == "submitted" and got.reviewer is None  # changed content needs a new review
        np.testing.assert_array_equal(api.load_label_map(store.files, got), fixed)
    # Same external id from another tool is another annotation.
    assert save(store, tax, img, labels, source="cvat", external_id="ann-17").id != first.id
    other_img, other_labels = ccp_pair("0007")
    with pytest.raises(api.CorrectionError, match="belongs to image"):
        save(store, tax, other_img, other_labels, source="labelstudio", external_id="ann-17")


def test_review_and_filters(store, tax, ccp_pair):
    ids = {}
    for i, (image_id, annotator, source) in enumerate([("0001", "ann", "rest"), ("0002", "bob", "cvat"),
                                                       ("0003", "ann", "labelstudio")]):
        img, labels = ccp_pair(image_id)
        ids[image_id] = save(store, tax, img, labels, annotator=annotator, source=source).id
    with store.session() as s:
        with pytest.raises(api.CorrectionError, match="status"):
            api.review(s, ids["0001"], "great", "rev")
        with pytest.raises(api.CorrectionError, match="reviewer"):
            api.review(s, ids["0001"], "approved", " ")
        with pytest.raises(api.CorrectionNotFound):
            api.review(s, 999, "approved", "rev")
        r = api.review(s, ids["0001"], "approved", "rev", "fine")
        assert (r.status, r.reviewer, r.review_notes) == ("approved", "rev", "fine") and r.reviewed_at
        api.review(s, ids["0002"], "rejected", "rev")
        assert [c.id for c in api.list_corrections(s, status="approved")] == [ids["0001"]]
        assert [c.id for c in api.list_corrections(s, annotator="ann")] == [ids["0001"], ids["0003"]]
        assert [c.id for c in api.list_corrections(s, source="cvat")] == [ids["0002"]]
        sha = api.get_correction(s, ids["0003"]).image_sha256
        assert [c.id for c in api.list_corrections(s, image=sha)] == [ids["0003"]]
        assert api.list_corrections(s, since=utcnow() + timedelta(seconds=5)) == []
        assert len(api.list_corrections(s, offset=1, limit=1)) == 1
        assert api.count_corrections(s, annotator="ann") == 2


def test_export_is_a_dataset_train_reads(store, tax, ccp_pair, tmp_path):
    from training.dataset import load_pair, scan_dataset

    with store.session() as s, pytest.raises(api.CorrectionError, match="no approved"):
        export_approved(s, store.files, tmp_path / "none", tax)
    assert not (tmp_path / "none").exists()
    made = []
    for image_id in ("0001", "0002", "0003"):
        img, labels = ccp_pair(image_id)
        made.append((save(store, tax, img, labels).id, labels))
    img, labels = ccp_pair("0001")
    older = save(store, tax, img, np.zeros_like(labels)).id  # approved first, superseded by the later review
    with store.session() as s:
        api.review(s, older, "approved", "rev")
        for cid, _ in made[:2]:
            api.review(s, cid, "approved", "rev")
        result = export_approved(s, store.files, tmp_path / "export", tax)
    assert result.images == 2 and result.superseded == 1 and sorted(result.corrections) == [m[0] for m in made[:2]]
    folder = scan_dataset(tmp_path / "export")
    assert folder.labels == tax.names
    lut = tax.lut_for_labels(folder.labels)
    import json

    by_stem = {item["id"]: item["correction"] for item in json.loads((tmp_path / "export" / "manifest.json")
                                                                      .read_text())["items"]}
    want = dict(made)
    assert len(folder.samples) == 2
    for sample in folder.samples:
        np.testing.assert_array_equal(load_pair(sample, lut, len(folder.labels))[1], want[by_stem[sample.id]])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    with store.session() as s, pytest.raises(api.CorrectionError, match="exists"):
        export_approved(s, store.files, tmp_path / "export", tax)
