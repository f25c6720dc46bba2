"""Shared fixtures: the real CCP folder and its masks, a tiny downscaled copy and a tiny trained model, the
default model loaded once, an app and its test client, a local image server; and helpers the tests share.

The tiny copy keeps real photos and real labels but at a quarter of the size, so a training run of a few
steps, an export and an evaluation each take seconds on two CPU cores. The default model (ONNX Runtime,
one thread: the CI machine's cores are shared) is handed to every app the tests build, so each app's
lifespan only warms it up.
"""
from __future__ import annotations

import http.server
import io
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CCP = REPO.parent / "shared" / "data" / "ccp"
DEFAULT_MODEL = REPO / "models" / "default"

# Small enough to train in seconds, real enough to exercise every code path.
TINY_CONFIG = {
    "encoder": "tu-regnetx_002", "encoder_weights": None, "decoder_channels": [16, 16, 16, 16, 16], "long_side": 128, "crop": [128, 96],
    "batch_size": 4, "epochs": 2, "val_percent": 25.0, "threads": 2, "lr": 0.002,
}


@pytest.fixture(scope="session")
def ccp() -> Path:
    assert CCP.is_dir(), f"the CCP dataset is expected at {CCP}"
    return CCP


def make_small_copy(src: Path, dst: Path, ids: list[str], scale: float = 0.25) -> Path:
    from training.dataset import write_downscaled_copy

    return write_downscaled_copy(src, dst, ids, scale)


@pytest.fixture(scope="session")
def tax():
    from models.taxonomy import load_taxonomy

    return load_taxonomy("fashion-13")


@pytest.fixture(scope="session")
def tiny_data(ccp, tmp_path_factory) -> Path:
    ids = sorted(p.stem for p in (ccp / "images").glob("*.jpg"))[:16]
    return make_small_copy(ccp, tmp_path_factory.mktemp("tiny") / "data", ids)


@pytest.fixture(scope="session")
def tiny_config_file(tmp_path_factory) -> Path:
    import yaml

    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tiny_config_file, tmp_path_factory) -> Path:
    """A finished two-epoch training run on the tiny data (session-wide: trained once)."""
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    train(tiny_data, out, TrainConfig.from_file(tiny_config_file), log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_run, ccp, tmp_path_factory) -> Path:
    from models.images import decode_image
    from training.export import export_model

    photos = [decode_image(ccp / "images" / f"{i}.jpg") for i in ("0001", "0002")]
    out = tmp_path_factory.mktemp("models") / "tiny"
    export_model(tiny_run / "best", out, parity_images=photos)
    return out


def label_map_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array.astype(np.uint8)).save(path)


@pytest.fixture(scope="session")
def ccp_mask(tax):
    """ccp_mask("0001") -> (H, W) uint8 fashion-13 label map of that CCP photo."""
    from models.images import read_label_map

    assert CCP.is_dir(), f"the CCP dataset is expected at {CCP}"
    lut = tax.lut_for_labels((CCP / "labels.txt").read_text().splitlines())
    cache: dict[str, np.ndarray] = {}

    def load(image_id: str) -> np.ndarray:
        if image_id not in cache:
            cache[image_id] = lut[read_label_map(CCP / "masks" / f"{image_id}.png")]
        return cache[image_id].copy()

    return load


@pytest.fixture(scope="session")
def ccp_image():
    from models.images import decode_image

    return lambda image_id: decode_image(CCP / "images" / f"{image_id}.jpg")


@pytest.fixture(scope="session")
def photos(ccp) -> list[Path]:
    return sorted((ccp / "images").glob("*.jpg"))[:3]


@pytest.fixture(scope="session")
def photo_bytes(photos) -> bytes:
    return photos[0].read_bytes()


@pytest.fixture(scope="session")
def predictor():
    from service.drafting.predictor import Predictor

    return Predictor(DEFAULT_MODEL, backend="onnx", threads=1)


def make_settings(tmp: Path, **overrides):
    from service.settings import Settings

    values = {"data_dir": tmp / "data", "threads": 1, "model_dir": DEFAULT_MODEL,
              **overrides}
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def batch_root(tmp_path_factory, photos) -> Path:
    root = tmp_path_factory.mktemp("batch_root")
    (root / "shoot").mkdir()
    for p in photos:
        (root / "shoot" / p.name).write_bytes(p.read_bytes())
    (root / "shoot" / "notes.jpg").write_bytes(b"not really a photo")
    return root


@pytest.fixture(scope="session")
def settings(tmp_path_factory, batch_root, image_server):
    # The image server's own address and port: a bare host would allow only port 80.
    return make_settings(tmp_path_factory.mktemp("service"), batch_root=batch_root,
                         allowed_url_hosts=[image_server.removeprefix("http://")], url_timeout_s=5)


@pytest.fixture(scope="session")
def client(settings, predictor):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    with TestClient(create_app(settings, predictor=predictor), raise_server_exceptions=False) as c:
        yield c


class SlowBackend:
    """The real backend, made slow: long enough that concurrent requests surely overlap."""

    def __init__(self, inner, delay: float):
        self.inner, self.delay = inner, delay
        self.name, self.device = inner.name, inner.device
        self.calls = 0

    def run(self, batch):
        self.calls += 1
        time.sleep(self.delay)
        return self.inner.run(batch)

    def describe(self):
        return {**self.inner.describe(), "slowed_by_s": self.delay}


def post_image(client, data: bytes, path: str = "/v1/predict", filename: str = "photo.jpg",
               content_type: str = "application/octet-stream", **params):
    return client.post(path, params=params, files={"image": (filename, data, content_type)})


def assert_encodings_decode_to(enc: dict, truth: np.ndarray, area: int) -> None:
    """Every exact format of one class decodes to its mask; polygons (simplified outlines) come close."""
    import base64

    from service.formats import coco_rle, cvat, ls_brush, polygons

    h, w = truth.shape
    np.testing.assert_array_equal(coco_rle.decode(enc["coco_rle"]), truth)
    np.testing.assert_array_equal(ls_brush.decode(enc["ls_brush"], h, w), truth)
    np.testing.assert_array_equal(cvat.decode(enc["cvat"], h, w), truth)
    np.testing.assert_array_equal(png_array(base64.b64decode(enc["png"])) > 0, truth)
    poly = polygons.decode(enc["polygons"], h, w)
    assert (poly & truth).sum() / max(1, (poly | truth).sum()) > 0.5 or area < 200


def png_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    photo: bytes = b""

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Transfer-Encoding" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_address[1]
        if self.path == "/photo.jpg":
            self._send(200, self.photo, {"Content-Type": "image/jpeg"})
        elif self.path == "/hop":
            self._send(302, headers={"Location": "/photo.jpg"})
        elif self.path == "/elsewhere":
            # Same machine, other host name: a redirect that must be refused.
            self._send(302, headers={"Location": f"http://localhost:{port}/photo.jpg"})
        elif self.path == "/huge":
            # No Content-Length: only counting while streaming can stop this.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\xff" * 65536
            try:
                for _ in range(512):  # 32 MiB, beyond any limit the tests set
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/otherport":
            # Same host, another port: refused unless that port is listed too.
            self._send(302, headers={"Location": f"http://127.0.0.1:{port + 1}/photo.jpg"})
        elif self.path == "/drip":
            # A byte every 0.2 s: each read is quick, the whole never arrives in time.
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/text":
            self._send(200, b"hello", {"Content-Type": "text/plain"})
        else:
            self._send(404, b"missing")


@pytest.fixture(scope="session")
def image_server(photo_bytes):
    """http://127.0.0.1:PORT serving /photo.jpg, redirects, an endless body, a slow one, a text file and 404s."""
    handler = type("Handler", (_ImageHandler,), {"photo": photo_bytes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05):
    """Poll until predicate() is truthy; returns its last value (tests then assert on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
