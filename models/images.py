"""Decode photos and label maps the same way everywhere: EXIF orientation applied, RGB uint8 out.

Training, evaluation and the server all call these, so a photo is seen upright and in the same
colour space by each of them. Light module: Pillow (with HEIC through pillow-heif), simplejpeg and numpy.
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's decompression-bomb guard (Image.MAX_IMAGE_PIXELS) is left on: the service sets its limit from
# its settings at startup; everything else keeps Pillow's default.
try:  # HEIC/HEIF photos (iPhones) open like any other; libheif applies their rotation itself
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - a base dependency; without it HEIC is "not a readable image"
    pass

_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def without_reprs(text: str) -> str:
    """The text with object reprs ("<_io.BytesIO object at 0x7f...>") replaced: a memory address tells a
    client nothing and says something about the server's process."""
    return _OBJECT_REPR.sub("the data", text)


def reason(exc: BaseException) -> str:
    """An exception's message fit to show a client (Pillow's name the buffer they read)."""
    return without_reprs(str(exc)).strip() or type(exc).__name__


class ImageDecodeError(ValueError):
    """The bytes or file are not a usable image; the message names the origin."""


class ImageTooLarge(ImageDecodeError):
    """The header declares more pixels than allowed (decode_image's max_pixels, or Pillow's bomb guard)."""


@dataclass(frozen=True)
class ImageHeader:
    """What a photo's header says, read without decoding a pixel."""

    width: int                 # as stored
    height: int
    format: str | None
    mode: str | None
    orientation: int = 1       # EXIF orientation; 5-8 swap the sides when displayed

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def turned(self) -> bool:
        """The EXIF orientation swaps width and height when the photo is displayed."""
        return self.orientation in (5, 6, 7, 8)

    @property
    def shown(self) -> tuple[int, int]:
        """(H, W) as a viewer displays it (EXIF orientation applied)."""
        return (self.width, self.height) if self.turned else (self.height, self.width)

    @property
    def plain_jpeg(self) -> bool:
        """An upright 8-bit RGB or greyscale JPEG: what libjpeg-turbo decodes as Pillow would."""
        return self.format == "JPEG" and self.mode in ("RGB", "L") and self.orientation == 1


def read_header(data: bytes | Path | str, origin: str | None = None) -> ImageHeader:
    """The header of an image file; ImageDecodeError when it is not an image, ImageTooLarge when Pillow's
    bomb guard refuses to open it."""
    origin = origin or (str(data) if isinstance(data, (str, Path)) else "image")
    data = _read(data, origin)
    try:
        with Image.open(io.BytesIO(data)) as img:
            return ImageHeader(img.width, img.height, img.format, img.mode, img.getexif().get(0x0112, 1))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{origin}: {exc}") from None
    except _UNREADABLE as exc:
        raise ImageDecodeError(f"{origin}: not a readable image ({reason(exc)})") from None


def decode_image(data: bytes | Path | str, origin: str | None = None, max_pixels: int | None = None,
                 header: ImageHeader | None = None) -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB array, upright as a viewer would display it.

    Grayscale, palette, RGBA (composited on white), 16-bit and CMYK inputs are converted; for an
    animated image the first frame is used. `max_pixels` is checked before any pixel is decoded.
    With the file's `header` already read, a plain JPEG goes to libjpeg-turbo without opening it again.
    """
    origin = origin or (str(data) if isinstance(data, (str, Path)) else "image")
    data = _read(data, origin)
    if header is not None and header.plain_jpeg:
        _check_size(header.width, header.height, origin, max_pixels)
        fast = _simplejpeg(data, header.height, header.width)
        if fast is not None:
            return fast
    with io.BytesIO(data) as src:
        try:
            img = Image.open(src)
            _check_size(img.width, img.height, origin, max_pixels)
            if header is None and img.format == "JPEG" and img.mode in ("RGB", "L") \
                    and img.getexif().get(0x0112, 1) == 1:
                fast = _simplejpeg(data, img.height, img.width)
                if fast is not None:
                    return fast
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
        except ImageDecodeError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"{origin}: {exc}") from None
        except _UNREADABLE as exc:
            raise ImageDecodeError(f"{origin}: not a readable image ({reason(exc)})") from None


def decode_image_for(data: bytes | Path | str, size_for: Callable[[int, int], tuple[int, int]],
                     origin: str | None = None, max_pixels: int | None = None,
                     header: ImageHeader | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(pixels, (H, W) as displayed) of a photo that will be scaled to `size_for(H, W)` and no larger.

    A JPEG at least twice that size on both sides is decoded at 1/2, 1/4 or 1/8 scale, the most that
    still leaves it at least `size_for(H, W)`: libjpeg skips the detail the resize would average away
    (a 12-megapixel phone photo: 25 + 38 ms of decoding and resizing become 11 + 2). The pixels are then
    smaller than (H, W); masks are still made at (H, W). Anything else is decode_image's full decode.
    `header`: the file's header when the caller has read it already.
    """
    origin = origin or (str(data) if isinstance(data, (str, Path)) else "image")
    data = _read(data, origin)
    if header is None:
        try:
            header = read_header(data, origin)
        except ImageTooLarge:
            raise
        except ImageDecodeError:
            return _whole(data, origin, max_pixels, None)  # decode_image says what is wrong with it
    w, h = header.width, header.height
    factor = 1
    # MPO (cameras' multi-picture JPEG): libjpeg reads its first picture, the one decode_image uses.
    if header.format in ("JPEG", "MPO") and header.mode in ("RGB", "L") and min(w, h) > 0 \
            and (max_pixels is None or w * h <= max_pixels):
        need_h, need_w = size_for(*header.shown)
        if header.turned:
            need_h, need_w = need_w, need_h
        factor = next((k for k in (8, 4, 2) if h // k >= need_h and w // k >= need_w), 1)
    if factor > 1:
        small = _reduced_jpeg(data, factor, header)
        if small is not None:
            return small, header.shown
    return _whole(data, origin, max_pixels, header)


def _whole(data: bytes, origin: str, max_pixels: int | None,
           header: ImageHeader | None) -> tuple[np.ndarray, tuple[int, int]]:
    image = decode_image(data, origin, max_pixels, header)
    return image, image.shape[:2]


def _check_size(w: int, h: int, origin: str, max_pixels: int | None) -> None:
    if w < 1 or h < 1:
        raise ImageDecodeError(f"{origin}: image has zero size ({w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLarge(f"{origin}: image is {w}x{h} = {w * h} pixels, above the limit of {max_pixels}")


def _reduced_jpeg(data: bytes, factor: int, header: ImageHeader) -> np.ndarray | None:
    """An RGB/greyscale JPEG decoded at 1/factor, upright; None when libjpeg objects to anything."""
    size = (-(-header.height // factor), -(-header.width // factor))
    try:
        if header.orientation == 1:
            arr = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True, min_height=size[0], min_width=size[1])
            return arr if arr.shape[:2] == size else None
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size[1], size[0]))  # Pillow's way to the same DCT scaling, for turned photos
            if img.size != (size[1], size[0]):
                return None
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except _UNREADABLE:
        return None


def _read(data: bytes | Path | str, origin: str) -> bytes:
    if isinstance(data, bytes):
        return data
    try:
        return Path(data).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"{origin}: cannot open ({exc.strerror or exc})") from None


def _simplejpeg(data: bytes, height: int, width: int) -> np.ndarray | None:
    """An upright 8-bit RGB or greyscale JPEG decoded by simplejpeg; None to leave it to Pillow.

    simplejpeg (libjpeg-turbo) gives the same pixels as Pillow (checked on all 1994 CCP photos) in a
    quarter of the time. In strict mode it stops at any corrupt-data warning, and such files, like CMYK
    ones and photos with a rotation to apply, go the Pillow way, which accepts or refuses them as before.
    """
    try:
        arr = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError:
        return None
    return arr if arr.shape[:2] == (height, width) else None


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def read_label_map(path: Path | str) -> np.ndarray:
    """Read a PNG label map as (H, W) uint8 ids; refuses colour masks, which would be ambiguous."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "P", "I", "I;16", "1"):
                raise ImageDecodeError(f"{path}: label map must be a single-channel PNG, got mode {img.mode}")
            arr = np.asarray(img)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{path}: not a readable label map ({reason(exc)})") from None
    if arr.dtype != np.uint8:
        if arr.max(initial=0) > 255:
            raise ImageDecodeError(f"{path}: label id {int(arr.max())} does not fit in 8 bits")
        arr = arr.astype(np.uint8)
    return arr


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a label map (H, W) or colour image (H, W, 3)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()
