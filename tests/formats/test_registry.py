"""The FORMATS registry: every name gives JSON payloads per class that decode back to the label map.
Payloads survive a JSON round trip and are keyed by class name, background left out by default.
Also the errors: unknown format names, unknown options, ids the class list does not cover.
"""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from service.formats import FORMATS, UnknownFormatError, coco_rle, cvat, encode, get_format, ls_brush, png, polygons


def decoders(h: int, w: int):
    return {
        "png": lambda p: png.decode_mask(base64.b64decode(p)),
        "coco_rle": coco_rle.decode,
        "polygons": lambda p: polygons.decode(p, h, w),
        "ls_brush": lambda p: ls_brush.decode(p, h, w),
        "cvat": lambda p: cvat.decode(p, h, w),
    }


def test_registry_names():
    assert set(FORMATS) == {"png", "coco_rle", "polygons", "ls_brush", "cvat"}
    assert all(callable(fn) for fn in FORMATS.values())


@pytest.mark.parametrize("name", ["png", "coco_rle", "polygons", "ls_brush", "cvat"])
def test_each_format_round_trips_through_json(name, fashion_masks, fashion13):
    lm = fashion_masks[0]
    h, w = lm.shape
    options = {"tolerance": 0} if name == "polygons" else None
    payloads = json.loads(json.dumps(encode(name, lm, fashion13.names, options)))
    garments = [c for c in np.unique(lm).tolist() if c != 0]
    assert list(payloads) == [fashion13.names[c] for c in garments]  # background left out by default
    decode = decoders(h, w)[name]
    for cid in garments:
        assert np.array_equal(decode(payloads[fashion13.names[cid]]), lm == cid), fashion13.names[cid]


def test_include_background_option(fashion_masks, fashion13):
    out = FORMATS["coco_rle"](fashion_masks[0], fashion13.names, {"include_background": True})
    assert "background" in out


def test_unknown_format_lists_known_names(fashion_masks, fashion13):
    with pytest.raises(UnknownFormatError) as info:
        encode("yolo", fashion_masks[0], fashion13.names)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'yolo'" in message
    assert all(name in message for name in FORMATS)
    with pytest.raises(UnknownFormatError):
        get_format(["png"])


def test_bad_options_and_ids(fashion_masks, fashion13):
    lm = fashion_masks[0]
    with pytest.raises(ValueError, match="tolerance"):
        encode("cvat", lm, fashion13.names, {"tolerance": 1})
    with pytest.raises(ValueError, match="class names"):
        encode("png", lm, fashion13.names[:3])
    with pytest.raises(ValueError, match="2-D"):
        encode("ls_brush", lm[None], fashion13.names)
