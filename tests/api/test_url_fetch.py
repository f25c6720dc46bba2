"""image_url fetches: allowed hosts name their ports, private addresses need naming, every hop and the
resolved address are checked (and connected to), and the whole fetch has a deadline, not only each read.

The image server listens on 127.0.0.1; a host name resolving to it stands in for DNS pointing inside.
"""
from __future__ import annotations

import asyncio
import socket
import time

import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_settings

from service.api.app import create_app
from service.drafting.errors import HostNotAllowed
from service.drafting.fetch import fetch_url


def _app(tmp_path, predictor, **settings):
    return TestClient(create_app(make_settings(tmp_path, warmup=False, **settings), predictor=predictor),
                      raise_server_exceptions=False)


def _port(server: str) -> int:
    return int(server.rsplit(":", 1)[1])


def test_a_host_without_a_port_allows_only_the_schemes_port(tmp_path, predictor, image_server):
    with _app(tmp_path, predictor, allowed_url_hosts=["localhost"]) as c:
        r = c.post("/v1/predict", json={"image_url": f"http://localhost:{_port(image_server)}/photo.jpg"})
        assert r.status_code == 403 and "not allowed" in r.json()["detail"]


def test_a_listed_port_is_fetched_and_a_redirect_to_another_port_refused(tmp_path, predictor, image_server):
    host = image_server.removeprefix("http://")
    with _app(tmp_path, predictor, allowed_url_hosts=[host]) as c:
        assert c.post("/v1/predict", json={"image_url": f"{image_server}/photo.jpg"}).status_code == 200
        r = c.post("/v1/predict", json={"image_url": f"{image_server}/otherport"})
        assert r.status_code == 403 and str(_port(image_server) + 1) in r.json()["detail"]


@pytest.fixture
def name_for_loopback(monkeypatch):
    """images.example.test resolves to 127.0.0.1 (as a DNS answer pointing inside would)."""
    loop_class = asyncio.base_events.BaseEventLoop
    real = loop_class.getaddrinfo

    async def fake(self, host, port, *args, **kwargs):
        if host == "images.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return await real(self, host, port, *args, **kwargs)

    monkeypatch.setattr(loop_class, "getaddrinfo", fake)
    return "images.example.test"


def test_a_name_resolving_to_a_private_address_is_refused(tmp_path, image_server, name_for_loopback):
    port = _port(image_server)
    settings = make_settings(tmp_path, allowed_url_hosts=[f"{name_for_loopback}:{port}"])
    with pytest.raises(HostNotAllowed, match="resolves to 127.0.0.1"):
        asyncio.run(fetch_url(f"http://{name_for_loopback}:{port}/photo.jpg", settings))


def test_its_network_can_be_allowed_and_the_checked_address_is_the_one_used(tmp_path, image_server, photo_bytes,
                                                                            name_for_loopback):
    port = _port(image_server)
    settings = make_settings(tmp_path, allowed_url_hosts=[f"{name_for_loopback}:{port}"],
                             allowed_url_networks=["127.0.0.0/8"])
    # The name exists only in the checked answer: fetching works only by connecting to that address.
    assert asyncio.run(fetch_url(f"http://{name_for_loopback}:{port}/photo.jpg", settings)) == photo_bytes


def test_a_fetch_has_a_total_deadline(tmp_path, predictor, image_server):
    host = image_server.removeprefix("http://")
    with _app(tmp_path, predictor, allowed_url_hosts=[host], url_timeout_s=5, url_deadline_s=1) as c:
        t0 = time.monotonic()
        r = c.post("/v1/predict", json={"image_url": f"{image_server}/drip"})
        assert r.status_code == 400 and "within 1 s" in r.json()["detail"]
        assert time.monotonic() - t0 < 4


@pytest.mark.parametrize("entry", ["https://a.example", "*.example.com", "a.example:0", "a.example:70000"])
def test_bad_entries_stop_startup(tmp_path, entry):
    with pytest.raises(ValueError, match="allowed_url_hosts"):
        make_settings(tmp_path, allowed_url_hosts=[entry])
