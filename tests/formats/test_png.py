"""PNG label maps round-trip exactly (single-channel 8-bit), and the colour helpers blend as documented.
Real CCP label maps, per-class mask PNGs and palette PNGs; palette rendering and overlay arithmetic;
refusals of colour PNGs, non-PNG data and out-of-palette ids.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.formats import png


def test_label_maps_round_trip(all_masks):
    for lm in all_masks:
        data = png.encode(lm)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(data)) as img:
            assert (img.mode, img.size) == ("L", (lm.shape[1], lm.shape[0]))
        back = png.decode(data)
        assert back.dtype == np.uint8 and np.array_equal(back, lm)


def test_label_map_png_reads_back_in_opencv_at_any_shape(all_masks):
    """The hand-written "Up"-filtered PNG: OpenCV and Pillow decode it to the label map, one-row and
    one-column maps included (no row above the first), and ids that wrap when subtracted (255 over 0)."""
    import cv2

    rng = np.random.default_rng(1)
    odd = [rng.integers(0, 256, shape).astype(np.uint8) for shape in [(1, 1), (1, 9), (9, 1), (3, 5), (17, 33)]]
    for lm in all_masks[:2] + odd:
        data = png.encode(lm)
        assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), lm)
        with Image.open(io.BytesIO(data)) as img:
            assert np.array_equal(np.asarray(img), lm)


def test_mask_png_is_1_bit_white_inside(fashion_masks):
    """Any PNG reader agrees: Pillow (mode 1), OpenCV (0/255) and our decoder; odd widths pad correctly."""
    import cv2

    for lm in fashion_masks[:3]:
        for cid in np.unique(lm)[1:]:
            for mask in (lm == cid, (lm == cid)[:, :-3]):   # a width that is not a multiple of 8
                data = png.encode_mask(mask)
                with Image.open(io.BytesIO(data)) as img:
                    assert img.mode == "1" and img.size == (mask.shape[1], mask.shape[0])
                    assert np.array_equal(np.asarray(img), mask)
                cv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                assert set(np.unique(cv).tolist()) <= {0, 255} and np.array_equal(cv == 255, mask)
                assert np.array_equal(png.decode_mask(data), mask)


def test_palette_png_decodes_to_indices():
    lm = np.arange(12, dtype=np.uint8).reshape(3, 4)
    img = Image.fromarray(lm).convert("P")
    img.putpalette(list(range(256)) * 3)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert np.array_equal(png.decode(buf.getvalue()), lm)


def test_render_uses_palette_rows(fashion_masks, fashion13):
    lm = fashion_masks[1]
    pal = fashion13.palette()
    rgb = png.render(lm, pal)
    assert rgb.shape == (*lm.shape, 3) and rgb.dtype == np.uint8
    for cid in np.unique(lm).tolist():
        assert (rgb[lm == cid] == pal[cid]).all()


def test_overlay_blends_only_foreground(fashion_masks, fashion13):
    lm = fashion_masks[2]
    pal = fashion13.palette()
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*lm.shape, 3), dtype=np.uint8)
    out = png.overlay(image, lm, pal, alpha=0.25)
    bg, fg = lm == 0, lm != 0
    assert np.array_equal(out[bg], image[bg])
    expected = np.rint(0.75 * image[fg].astype(np.float64) + 0.25 * pal[lm[fg]].astype(np.float64))
    assert np.abs(out[fg].astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(png.overlay(image, lm, pal, alpha=1.0)[fg], pal[lm[fg]])
    assert np.array_equal(png.overlay(image, lm, pal, alpha=0.0), image)
    grey = png.overlay(image[:, :, 0], lm, pal, alpha=0.5)
    assert np.array_equal(grey[bg], np.repeat(image[:, :, :1], 3, axis=2)[bg])


def test_refusals(fashion13):
    lm = np.full((4, 4), 20, dtype=np.uint8)
    with pytest.raises(ValueError, match="palette"):
        png.render(lm, fashion13.palette())
    with pytest.raises(ValueError, match="size"):
        png.overlay(np.zeros((5, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), fashion13.palette())
    with pytest.raises(ValueError, match="alpha"):
        png.overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), fashion13.palette(), 1.5)
    rgb = io.BytesIO()
    Image.new("RGB", (3, 3)).save(rgb, format="PNG")
    with pytest.raises(ValueError, match="single-channel"):
        png.decode(rgb.getvalue())
    with pytest.raises(ValueError, match="signature"):
        png.decode(b"GIF89a....")
    with pytest.raises(ValueError, match="uint8"):
        png.encode(np.zeros((3, 3), dtype=np.uint16))
