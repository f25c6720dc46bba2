"""EXIF orientation: a phone photo stored sideways with an Orientation tag gets masks for the photo as
displayed — same width/height as a viewer shows, and the same mask as the upright photo.

Lossless PNG copies must match exactly; JPEG copies (recompressed pixels) nearly.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from tests.conftest import png_array, post_image
from PIL import Image

from models.images import decode_image

# Orientation tag -> how the stored pixels relate to the upright photo (np.rot90 turns counter-clockwise).
STORED = {6: lambda up: np.rot90(up, 1), 8: lambda up: np.rot90(up, -1), 3: lambda up: np.rot90(up, 2)}


def _with_orientation(upright: np.ndarray, orientation: int, fmt: str) -> bytes:
    stored = np.ascontiguousarray(STORED[orientation](upright))
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    # As bytes: the HEIF writer then stores the rotation as the container's own transform, as cameras do.
    img.save(buf, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt in ("JPEG", "HEIF") else {}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def upright(photos) -> np.ndarray:
    return decode_image(photos[2])


@pytest.fixture(scope="module")
def upright_mask(client, upright) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(upright).save(buf, format="PNG")
    return png_array(post_image(client, buf.getvalue(), path="/v1/predict/mask.png", filename="up.png").content)


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_png_with_orientation_gives_the_upright_mask(client, upright, upright_mask, orientation):
    data = _with_orientation(upright, orientation, "PNG")
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.getexif().get(0x0112) == orientation
        if orientation in (6, 8):
            assert raw.size == (upright.shape[0], upright.shape[1])  # stored sideways
    r = post_image(client, data, path="/v1/predict/mask.png", filename="sideways.png")
    assert r.status_code == 200, r.text
    mask = png_array(r.content)
    assert mask.shape == upright.shape[:2]
    np.testing.assert_array_equal(mask, upright_mask)


@pytest.mark.parametrize("orientation", [6, 8])
def test_jpeg_from_a_phone_is_answered_in_display_coordinates(client, upright, upright_mask, orientation):
    data = _with_orientation(upright, orientation, "JPEG")
    r = post_image(client, data, formats="coco_rle")
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["height"], a["width"]) == upright.shape[:2]
    mask = png_array(post_image(client, data, path="/v1/predict/mask.png").content)
    assert mask.shape == upright.shape[:2]
    # Only JPEG recompression separates the two: nearly every pixel agrees.
    assert (mask == upright_mask).mean() > 0.97


@pytest.mark.parametrize("fmt, orientation", [("HEIF", 6), ("HEIF", 1), ("AVIF", 1)])
def test_iphone_heic_and_avif_photos_are_answered_upright(client, upright, upright_mask, fmt, orientation):
    """HEIC is an iPhone camera's default format; its rotation is applied by libheif (a sideways photo
    tagged orientation 6 comes back upright). Lossy copies, so nearly every pixel agrees."""
    data = _with_orientation(upright, orientation, fmt) if orientation != 1 else _encoded(upright, fmt)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.format == fmt
    r = client.post("/v1/predict/mask.png", content=data, headers={"content-type": "image/heic"})
    assert r.status_code == 200, r.text
    mask = png_array(r.content)
    assert mask.shape == upright.shape[:2]
    assert (mask == upright_mask).mean() > 0.97


def _encoded(upright: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(upright).save(buf, format=fmt, quality=95)
    return buf.getvalue()
