"""Slow clients cannot starve the service: a request takes an inference slot only once its body is in,
a body has a total deadline (408), and bodies arriving at once are bounded (503 with Retry-After).

Over real sockets (uvicorn): each slow client sends its headers and then a byte at a time.
"""
from __future__ import annotations

import socket
import threading
import time
from contextlib import ExitStack, contextmanager

import httpx
from tests.conftest import make_settings
from tests.live_server import serve_app

from service.api.app import create_app


@contextmanager
def slow_uploads(url: str, count: int, every_s: float = 0.3):
    """`count` connections sending a predict body one byte every `every_s` until the block ends; yields
    the sockets (a test may read what the service answered them)."""
    host, port = url.removeprefix("http://").split(":")
    stop, socks = threading.Event(), []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 100000\r\n\r\n\xff\xd8")
        socks.append(s)

    def drip():
        while not stop.wait(every_s):
            for s in socks:
                try:
                    s.sendall(b"\x00")
                except OSError:
                    pass

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # every slow request is in the service before the test goes on
        yield socks
    finally:
        stop.set()
        thread.join()
        for s in socks:
            s.close()


def _serve(tmp_path, predictor, **settings):
    app = create_app(make_settings(tmp_path, warmup=False, **settings), predictor=predictor)
    return serve_app(app)


def test_normal_clients_get_drafts_while_slow_ones_upload(tmp_path, predictor, photo_bytes):
    with ExitStack() as stack:
        url = stack.enter_context(_serve(tmp_path, predictor, max_in_flight=2, max_uploads_in_flight=16))
        stack.enter_context(slow_uploads(url, 4))
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(4):
                r = http.post("/v1/predict", files={"image": ("a.jpg", photo_bytes, "image/jpeg")})
                assert r.status_code == 200, r.text
                assert r.json()["classes"]


def test_a_body_that_does_not_arrive_in_time_is_a_408(tmp_path, predictor):
    with _serve(tmp_path, predictor, upload_timeout_s=1) as url, slow_uploads(url, 1) as (sock,):
        sock.settimeout(10)
        t0 = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"upload_timeout_s" in answer and time.monotonic() - t0 < 5


def test_uploads_arriving_at_once_are_bounded(tmp_path, predictor, photo_bytes):
    with _serve(tmp_path, predictor, max_uploads_in_flight=2, retry_after_s=2) as url, slow_uploads(url, 2), \
            httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/predict", files={"image": ("a.jpg", photo_bytes, "image/jpeg")})
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert "max_uploads_in_flight" in r.json()["detail"]
        assert http.get("/v1/health/ready").status_code == 200  # requests without a body pass
