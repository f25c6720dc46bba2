"""decode_image's two paths: plain upright JPEGs through OpenCV, everything else through Pillow.

They must give the same pixels where both apply, and the fast path must not accept what Pillow refuses.
"""
import io

import numpy as np
import pytest
from PIL import Image

from training.images import ImageDecodeError, decode_image


def pillow_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def test_ccp_photos_decode_exactly_as_pillow_does(ccp):
    for path in sorted((ccp / "images").glob("*.jpg"))[::45] + sorted((ccp / "unlabeled").glob("*"))[::110]:
        data = path.read_bytes()
        assert np.array_equal(decode_image(data), pillow_rgb(data)), path.name
        assert np.array_equal(decode_image(path), pillow_rgb(data)), path.name


def test_greyscale_jpeg_becomes_three_equal_channels(ccp):
    grey = np.asarray(Image.open(sorted((ccp / "images").glob("*.jpg"))[0]).convert("L"))
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=90)
    out = decode_image(buf.getvalue())
    assert out.shape == grey.shape + (3,) and np.array_equal(out, pillow_rgb(buf.getvalue()))


def test_truncated_jpeg_is_refused_not_padded(ccp):
    data = sorted((ccp / "images").glob("*.jpg"))[0].read_bytes()
    with pytest.raises(ImageDecodeError, match="truncated.jpg: not a readable image"):
        decode_image(data[: len(data) // 2], origin="truncated.jpg")
