"""Taxonomy loading and the CCP mapping: what each source label becomes, and the errors.

The mapping is checked against the issue's list class by class; bad files must fail at load time
with a message that names the problem.
"""
import json

import numpy as np
import pytest

from models.taxonomy import TaxonomyError, load_taxonomy


@pytest.fixture(scope="module")
def fashion():
    return load_taxonomy("fashion-13")


def test_classes_in_order_with_pairs(fashion):
    assert fashion.names == ["background", "skin", "hair", "top", "outerwear", "dress", "skirt", "pants",
                             "legwear", "socks", "shoes", "bag", "accessory"]
    assert {c.name for c in fashion.classes if c.paired} == {"shoes", "socks", "legwear", "pants"}
    assert fashion.palette().shape == (13, 3)
    assert len({tuple(c) for c in fashion.palette().tolist()}) == 13, "colours must tell classes apart"


@pytest.mark.parametrize("label,expected", [
    ("null", "background"), ("skin", "skin"), ("hair", "hair"), ("bra", "top"), ("hoodie", "top"),
    ("vest", "outerwear"), ("suit", "outerwear"), ("romper", "dress"), ("skirt", "skirt"), ("shorts", "pants"),
    ("jeans", "pants"), ("tights", "legwear"), ("stockings", "legwear"), ("socks", "socks"), ("wedges", "shoes"),
    ("clogs", "shoes"), ("wallet", "bag"), ("purse", "bag"), ("belt", "accessory"), ("sunglasses", "accessory"),
    ("swimwear", "accessory"),
])
def test_ccp_labels_map_as_specified(fashion, ccp, label, expected):
    labels = (ccp / "labels.txt").read_text().split()
    lut = fashion.lut_for_labels(labels)
    assert fashion.names[lut[labels.index(label)]] == expected


def test_every_ccp_label_is_mapped_and_ids_beyond_are_flagged(fashion, ccp):
    labels = (ccp / "labels.txt").read_text().split()
    lut = fashion.lut_for_labels(labels)
    assert (lut[: len(labels)] < 13).all()
    assert (lut[len(labels):] == 255).all()


def test_own_class_names_map_to_themselves(fashion):
    assert np.array_equal(fashion.lut_for_labels(fashion.names)[:13], np.arange(13))


def test_unknown_source_label_is_named(fashion):
    with pytest.raises(TaxonomyError, match="'kilt'"):
        fashion.lut_for_labels(["null", "skin", "kilt"])


def test_duplicate_labels_in_labels_txt(fashion):
    with pytest.raises(TaxonomyError, match="duplicate label names"):
        fashion.lut_for_labels(["null", "skin", "skin"])


def _write(tmp_path, data):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    return path


BASE = {"name": "t", "classes": [{"id": 0, "name": "bg", "color": [0, 0, 0]}, {"id": 1, "name": "a", "color": [1, 2, 3]}],
        "sources": {"s": {"bg": ["null"], "a": ["x"]}}}


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["classes"].append({"id": 1, "name": "b", "color": [0, 0, 0]}), "duplicate class ids"),
    (lambda d: d["classes"].append({"id": 2, "name": "a", "color": [0, 0, 0]}), "duplicate class names"),
    (lambda d: d["classes"].__setitem__(1, {"id": 5, "name": "a", "color": [0, 0, 0]}), "in order"),
    (lambda d: d["sources"]["s"].__setitem__("zzz", ["y"]), "unknown class 'zzz'"),
    (lambda d: d["sources"]["s"]["a"].append("null"), "maps label 'null' twice"),
    (lambda d: d["classes"][1].__setitem__("color", [0, 0, 300]), "colour"),
    (lambda d: d.pop("classes"), "missing or bad field"),
])
def test_bad_taxonomy_files_fail_at_load(tmp_path, mutate, message):
    data = json.loads(json.dumps(BASE))
    mutate(data)
    with pytest.raises(TaxonomyError, match=message):
        load_taxonomy(_write(tmp_path, data))


def test_valid_custom_taxonomy_and_unmapped_label(tmp_path):
    tax = load_taxonomy(_write(tmp_path, BASE))
    assert tax.lut_for_labels(["null", "x"])[:2].tolist() == [0, 1]
    with pytest.raises(TaxonomyError, match=r"\['y'\]"):
        tax.lut_for_labels(["null", "x", "y"])


def test_unknown_builtin_name_lists_known():
    with pytest.raises(TaxonomyError, match="fashion-13"):
        load_taxonomy("fashion-99")
