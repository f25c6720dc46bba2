"""X-Request-ID on every answer, in the log lines of the request, and in the body of a 500.

Real requests through the app's whole middleware stack: an id the caller sends is echoed when it is
a sane token and replaced otherwise; an unexpected error is logged and answered with the same id.
"""
from __future__ import annotations

import logging
import re

from tests.conftest import make_settings, post_image
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app

HEX_ID = re.compile(r"[0-9a-f]{32}")


def test_every_answer_carries_a_request_id(client, photo_bytes):
    first, second = client.get("/v1/health/live"), client.get("/v1/health/live")
    assert HEX_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert post_image(client, photo_bytes, formats="png").headers["x-request-id"]
    # The caller's own id is kept, so a tool can match its log to ours...
    r = client.get("/v1/models/current", headers={"X-Request-ID": "ls-task-42.attempt:2"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "ls-task-42.attempt:2"
    # ...unless it could forge or flood a log line.
    for bad in ("two words", "a\tb", "x" * 129, "naïve"):
        r = client.get("/v1/health/live", headers={"X-Request-ID": bad.encode("utf-8")})
        assert HEX_ID.fullmatch(r.headers["x-request-id"]), bad
    # Answers made before any route runs: a refused body size, a wrong content type, an unknown path.
    big = client.post("/v1/predict", content=b"\xff" * (21 * 1024 * 1024), headers={"content-type": "image/jpeg"})
    assert big.status_code == 413 and HEX_ID.fullmatch(big.headers["x-request-id"])
    assert client.post("/v1/predict", content=b"x", headers={"content-type": "text/plain"}).headers["x-request-id"]
    assert client.get("/v1/nothing-here").headers["x-request-id"]


def test_an_unexpected_error_is_logged_and_answered_with_its_request_id(tmp_path, predictor, caplog, capsys):
    from service.api.logs import configure_logging

    app = create_app(make_settings(tmp_path), predictor=predictor)

    @app.get("/v1/broken")
    def broken():  # a route with a bug, as a stand-in for any
        logging.getLogger("tailor.service").warning("about to fail")
        raise ZeroDivisionError("bug")

    configure_logging("info")
    tailor_log = logging.getLogger("tailor")
    try:
        with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level(logging.INFO, "tailor"):
            r = c.get("/v1/broken", headers={"X-Request-ID": "req-7"})
            live = c.get("/v1/health/live", params={"probe": "1"}, headers={"X-Request-ID": "ok-1"})
    finally:
        for h in [h for h in tailor_log.handlers if getattr(h, "_tailor", False)]:
            tailor_log.removeHandler(h)
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-7"
    assert r.json()["detail"] == "internal error (ZeroDivisionError); request id req-7"
    errors = [rec for rec in caplog.records if rec.levelno == logging.ERROR]
    assert len(errors) == 1 and "req-7" in errors[0].getMessage() and errors[0].exc_info[0] is ZeroDivisionError
    # The console handler stamps lines written while the request ran with its id.
    console = capsys.readouterr().err
    assert re.search(r"WARNING tailor\.service \[req-7\]: about to fail", console), console
    assert "[-]: model" in console  # the warm-up line, outside any request
    # One access line per request, with its id, status and time (uvicorn's own is switched off in serve).
    assert live.status_code == 200
    assert re.search(r"INFO tailor\.access \[req-7\]: testclient GET /v1/broken 500 [0-9.]+ ms", console), console
    assert re.search(r"INFO tailor\.access \[ok-1\]: testclient GET /v1/health/live\?probe=1 200 [0-9.]+ ms", console)


def test_serve_refuses_an_unknown_log_level():
    from service.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", "--log-level", "loud"])
    assert result.exit_code != 0 and "--log-level 'loud'" in result.output and "warning" in result.output
