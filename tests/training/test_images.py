"""decode_image's two paths: plain upright JPEGs through simplejpeg, everything else through Pillow.

They must give the same pixels where both apply, and the fast path must neither accept what Pillow
refuses nor refuse what Pillow accepts.
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


def test_corrupt_jpegs_get_pillows_verdict(ccp):
    """Bytes overwritten mid-stream: whatever Pillow makes of each file (pixels or an error), decode_image too."""
    original = sorted((ccp / "images").glob("*.jpg"))[1].read_bytes()
    rng = np.random.default_rng(0)
    verdicts = set()
    for _ in range(8):
        data = bytearray(original)
        for pos in rng.integers(1000, len(data) - 1000, 20):
            data[pos] = rng.integers(0, 256)
        data = bytes(data)
        try:
            want = pillow_rgb(data)
        except OSError:
            with pytest.raises(ImageDecodeError, match="not a readable image"):
                decode_image(data)
            verdicts.add("refused")
        else:
            assert np.array_equal(decode_image(data), want)
            verdicts.add("decoded")
    assert verdicts == {"refused", "decoded"}  # both kinds of corruption were exercised
