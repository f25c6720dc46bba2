"""decode_image's two paths: plain upright JPEGs through simplejpeg, everything else through Pillow.

They must give the same pixels where both apply, and the fast path must neither accept what Pillow
refuses nor refuse what Pillow accepts.
"""
import io

import numpy as np
import pytest
from PIL import Image

from models.images import ImageDecodeError, decode_image, decode_image_for


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


def _big_jpeg(ccp, scale: int, orientation: int = 1, mode: str = "RGB") -> tuple[bytes, np.ndarray]:
    """A CCP photo enlarged `scale` times, as a phone would store it (the upright pixels returned too)."""
    up = Image.open(sorted((ccp / "images").glob("*.jpg"))[3]).convert("RGB")
    up = up.resize((up.width * scale, up.height * scale), Image.BICUBIC)
    stored = {1: up, 6: up.transpose(Image.Transpose.ROTATE_90), 3: up.transpose(Image.Transpose.ROTATE_180)}
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored[orientation].convert(mode).save(buf, format="JPEG", quality=92, exif=exif)
    return buf.getvalue(), np.asarray(up)


def model_size(h: int, w: int) -> tuple[int, int]:
    from models.preprocessing import input_size

    return input_size(h, w, 448, 32)


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_a_large_jpeg_is_decoded_only_as_large_as_the_model_needs(ccp, orientation):
    import cv2

    data, upright = _big_jpeg(ccp, 4, orientation)  # 2200 wide, over 3000 high
    pixels, shown = decode_image_for(data, model_size)
    assert shown == upright.shape[:2]
    need = model_size(*shown)
    # 1/4 scale is the most that still covers the model input; it is the upright photo, only smaller.
    assert pixels.shape == (upright.shape[0] // 4, upright.shape[1] // 4, 3)
    assert pixels.shape[0] >= need[0] and pixels.shape[1] >= need[1]
    full = decode_image(data)
    assert full.shape == upright.shape
    area = cv2.resize(full, pixels.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(area.astype(int) - pixels).mean() < 1.0  # grey levels: the same picture


def test_a_large_mpo_is_decoded_small_from_its_first_picture(ccp):
    import cv2

    first, _ = _big_jpeg(ccp, 4)
    up = Image.open(io.BytesIO(first))
    buf = io.BytesIO()
    up.save(buf, format="MPO", save_all=True, append_images=[up.rotate(90, expand=True)], quality=92)
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    pixels, shown = decode_image_for(buf.getvalue(), model_size)
    full = decode_image(buf.getvalue())  # Pillow's way: the first picture
    assert shown == full.shape[:2] and pixels.shape == (full.shape[0] // 4, full.shape[1] // 4, 3)
    area = cv2.resize(full, pixels.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(area.astype(int) - pixels).mean() < 1.0


def test_photos_the_model_needs_whole_are_decoded_as_decode_image_does(ccp, tmp_path):
    photo = sorted((ccp / "images").glob("*.jpg"))[3]
    pixels, shown = decode_image_for(photo, model_size)  # about 550 x 830: under twice the model input
    assert np.array_equal(pixels, decode_image(photo)) and shown == pixels.shape[:2]
    for mode in ("CMYK",):  # not a plain RGB/grey JPEG: Pillow's full decode, converted
        data, upright = _big_jpeg(ccp, 4, mode=mode)
        pixels, shown = decode_image_for(data, model_size)
        assert pixels.shape == upright.shape and np.array_equal(pixels, decode_image(data))
    png = io.BytesIO()
    big = decode_image(photo).repeat(3, 0).repeat(3, 1)
    Image.fromarray(big).save(png, format="PNG")
    pixels, shown = decode_image_for(png.getvalue(), model_size)  # not a JPEG: decoded whole
    assert np.array_equal(pixels, big) and shown == big.shape[:2]
    with pytest.raises(ImageDecodeError, match="big.jpg: image is 2200x[0-9]+ = [0-9]+ pixels, above the limit"):
        decode_image_for(_big_jpeg(ccp, 4)[0], model_size, origin="big.jpg", max_pixels=1_000_000)
    with pytest.raises(ImageDecodeError, match="notes.txt: not a readable image"):
        decode_image_for(b"not a photo at all", model_size, origin="notes.txt")
    with pytest.raises(ImageDecodeError, match="half.jpg: not a readable image"):
        decode_image_for(_big_jpeg(ccp, 4)[0][:20000], model_size, origin="half.jpg")
