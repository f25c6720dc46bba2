"""Hostile and unusual inputs: each bad one gets its own 4xx with a clear message, never a 5xx.

Unusual but valid photos (grayscale, RGBA, palette, 16-bit, CMYK, animated GIF) must be predicted,
and the service must keep answering normally after all of it.
"""
from __future__ import annotations

import base64
import io
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from tests.conftest import make_settings, png_array, post_image
from PIL import Image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb costs no more to send)."""
    png = _encode(Image.new("L", (8, 8)), "PNG")
    body = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png[8:16] + body + struct.pack(">I", zlib.crc32(b"IHDR" + body)) + png[33:]


@pytest.fixture(scope="module")
def small_photo(photos) -> Image.Image:
    with Image.open(photos[1]) as img:
        return img.convert("RGB").resize((275, 415))


def _bad_cases(photo_bytes: bytes, server: str) -> dict:
    png = _encode(Image.open(io.BytesIO(photo_bytes)).resize((100, 150)), "PNG")
    upload = {"files": {"image": ("x.jpg", b"", "image/jpeg")}}

    def up(data, name="x.jpg", **params):
        return {"files": {"image": (name, data, "image/jpeg")}, "params": params}

    return {  # name: (request kwargs, status, words the message must contain)
        "not_an_image": (up(b"hello, I am text"), 400, "not a readable image"),
        "empty_file": (upload, 400, "empty"),
        "truncated_jpeg": (up(photo_bytes[: len(photo_bytes) // 2]), 400, "truncated"),
        "truncated_png": (up(png[: len(png) // 2]), 400, "not a readable image"),
        "decompression_bomb": (up(_png_with_size(100_000, 100_000)), 413, "max_pixels"),
        "one_pixel": (up(_encode(Image.new("RGB", (1, 1)), "PNG")), 400, "minimum side"),
        "zero_size": (up(_png_with_size(0, 10)), 400, "not a readable image"),
        "unknown_format": (up(photo_bytes, formats="png,tiff"), 422, "coco_rle"),
        "oversized_upload": (up(b"\xff" * (20 * 1024 * 1024 + 10)), 413, "limit"),
        "no_image_field": ({"files": {"picture": ("x.jpg", photo_bytes, "image/jpeg")}}, 400, "'image'"),
        "text_field_not_file": ({"data": {"image": "abc"}, "files": {"other": ("a", b"1")}}, 400, "file upload"),
        "wrong_content_type": ({"content": photo_bytes, "headers": {"content-type": "text/plain"}}, 415,
                               "multipart/form-data"),
        "empty_raw_body": ({"content": b"", "headers": {"content-type": "image/jpeg"}}, 400, "empty"),
        "raw_body_not_an_image": ({"content": b"GIF89a but not really", "headers": {"content-type": "image/gif"}},
                                  400, "not a readable image"),
        "oversized_raw_body": ({"content": b"\xff" * (20 * 1024 * 1024 + 10),
                                "headers": {"content-type": "application/octet-stream"}}, 413, "limit"),
        "no_content_type": ({"content": b"abc"}, 415, "content type"),
        "empty_json_body": ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
        "invalid_json": ({"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        "json_without_image": ({"json": {"formats": "png"}}, 422, "exactly one"),
        "json_both_sources": ({"json": {"image_base64": "aGk=", "image_url": f"{server}/photo.jpg"}}, 422,
                              "exactly one"),
        "json_unknown_field": ({"json": {"image_base64": "aGk=", "colour": "red"}}, 422, "colour"),
        "json_unknown_format": ({"json": {"image_base64": base64.b64encode(photo_bytes).decode(),
                                          "formats": ["polygon"]}}, 422, "known formats"),
        "bad_base64": ({"json": {"image_base64": "***not base64***"}}, 400, "base64"),
        "url_host_not_allowed": ({"json": {"image_url": "https://example.com/a.jpg"}}, 403, "not allowed"),
        "url_redirects_elsewhere": ({"json": {"image_url": f"{server}/elsewhere"}}, 403, "another host"),
        "url_body_too_large": ({"json": {"image_url": f"{server}/huge"}}, 413, "limit"),
        "url_not_found": ({"json": {"image_url": f"{server}/missing.jpg"}}, 400, "HTTP 404"),
        "url_not_an_image": ({"json": {"image_url": f"{server}/text"}}, 400, "not a readable image"),
        "url_bad_scheme": ({"json": {"image_url": "file:///etc/passwd"}}, 400, "http or https"),
    }


BAD = ["not_an_image", "empty_file", "truncated_jpeg", "truncated_png", "decompression_bomb", "one_pixel",
       "zero_size", "unknown_format", "oversized_upload", "no_image_field", "text_field_not_file",
       "wrong_content_type", "empty_raw_body", "raw_body_not_an_image", "oversized_raw_body", "no_content_type", "empty_json_body", "invalid_json", "json_without_image",
       "json_both_sources", "json_unknown_field", "json_unknown_format", "bad_base64", "url_host_not_allowed",
       "url_redirects_elsewhere", "url_body_too_large", "url_not_found", "url_not_an_image", "url_bad_scheme"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gets_a_clear_4xx(client, photo_bytes, image_server, case):
    kwargs, status, words = _bad_cases(photo_bytes, image_server)[case]
    r = client.post("/v1/predict", **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert words.lower() in str(detail).lower(), detail


@pytest.mark.parametrize("path", ["/v1/predict/mask.png", "/v1/predict/overlay.png"])
def test_raw_variants_refuse_bad_input_in_json(client, path):
    r = post_image(client, b"GIF89a-but-not-really", path=path)
    assert r.status_code == 400 and "not a readable image" in r.json()["detail"]


VALID = {
    "grayscale": lambda im: _encode(im.convert("L"), "PNG"),
    "rgba": lambda im: _encode(im.convert("RGBA"), "PNG"),
    "palette": lambda im: _encode(im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
    "gray_16bit": lambda im: _encode(Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257), "PNG"),
    "cmyk_jpeg": lambda im: _encode(im.convert("CMYK"), "JPEG", quality=92),
    "webp": lambda im: _encode(im, "WEBP"),
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_unusual_but_valid_photos_are_predicted(client, small_photo, kind):
    data = VALID[kind](small_photo)
    r = post_image(client, data, formats="coco_rle")
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["width"], a["height"]) == small_photo.size
    assert sum(c["area"] for c in a["classes"]) == small_photo.size[0] * small_photo.size[1]


def test_animated_gif_uses_its_first_frame(client, small_photo, predictor):
    inverted = Image.fromarray(255 - np.asarray(small_photo))
    buf = io.BytesIO()
    small_photo.save(buf, format="GIF", save_all=True, append_images=[inverted], duration=100, loop=0)
    with Image.open(io.BytesIO(buf.getvalue())) as gif:
        assert gif.n_frames == 2
        first = np.asarray(gif.convert("RGB"))
    r = post_image(client, buf.getvalue(), path="/v1/predict/mask.png", filename="anim.gif")
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(png_array(r.content), predictor.predict(first).labels)


# Formats Pillow reads whose decoders fail in different ways (OSError, SyntaxError, ValueError, struct and
# index errors...) when their bytes are corrupted.
FUZZED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "ICO", "TGA", "PCX", "PPM", "DDS", "QOI")


@pytest.mark.parametrize("fmt", FUZZED_FORMATS)
def test_corrupted_photos_get_a_4xx_or_a_mask_never_a_5xx(client, small_photo, fmt):
    """A CCP photo saved in each format, then bytes overwritten or cut off at seeded random places: the
    service answers each with a mask (the damage was survivable) or a 4xx naming the problem."""
    import random

    rng = random.Random(fmt)
    data = _encode(small_photo.resize((92, 138)), fmt)
    answers = []
    for _ in range(6):
        damaged = bytearray(data)
        for _ in range(rng.choice([1, 4, 16, 64])):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(1, len(damaged))]
        r = client.post("/v1/predict/mask.png", content=bytes(damaged),
                        headers={"content-type": "application/octet-stream"})
        assert r.status_code in (200, 400, 413), (fmt, r.status_code, r.text[:300])
        if r.status_code != 200:
            assert r.json()["detail"], r.text  # a message, not an empty refusal
        answers.append(r.status_code)
    assert 400 in answers, answers  # the seeded damage reaches the decoder's error paths, not only pixels


def test_service_keeps_serving_after_bad_input(client, photo_bytes, image_server):
    for kwargs, _, _ in _bad_cases(photo_bytes, image_server).values():
        assert client.post("/v1/predict", **kwargs).status_code < 500
    assert post_image(client, photo_bytes).status_code == 200
    assert client.get("/v1/health/ready").status_code == 200


def test_body_limit_is_enforced_while_streaming(tmp_path, predictor):
    """A chunked upload with no Content-Length is cut off at the limit, long before it ends."""
    import uvicorn

    from service.api.app import create_app

    settings = make_settings(tmp_path, max_upload_bytes=256 * 1024, warmup=False)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, predictor=predictor), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not (server.started and server.servers) and time.monotonic() < deadline:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        sent, reply = 0, b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
            head = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
                    b"Content-Type: image/jpeg\r\n\r\n")
            sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))  # a well-formed part that never ends
            chunk = b"\x00" * 65536
            try:
                for _ in range(200):  # 12.5 MiB if nobody stopped us
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                    sock.settimeout(0.001 if sent < settings.predict_body_limit else 0.2)
                    try:
                        reply += sock.recv(65536)
                    except TimeoutError:
                        continue
                    if reply:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            sock.settimeout(5)
            while b"\r\n\r\n" not in reply:
                more = sock.recv(65536)
                if not more:
                    break
                reply += more
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert sent < 4 * settings.predict_body_limit
    finally:
        server.should_exit = True
        thread.join(10)
