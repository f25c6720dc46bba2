"""The pixel budget that bounds serving memory: photos wait their turn while the ones in work hold too
many pixels, first come first served, and a photo larger than the whole budget runs alone.

Threads against the real PixelBudget, then concurrent uploads of real CCP photos through the app.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.conftest import make_settings, post_image
from fastapi.testclient import TestClient

from models.images import decode_image
from service.api.app import create_app
from service.drafting.pixel_budget import PixelBudget


def _holder(budget: PixelBudget, pixels: int, log: list, name: str, release: threading.Event) -> threading.Thread:
    def run():
        with budget.hold(pixels):
            log.append(("in", name, budget.used))
            release.wait(10)
        log.append(("out", name))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _settle() -> None:
    time.sleep(0.2)  # long enough for a thread that can enter to have entered


def test_photos_wait_while_the_budget_is_held_and_enter_in_arrival_order():
    budget, log = PixelBudget(100), []
    gates = {n: threading.Event() for n in "abcd"}
    a = _holder(budget, 60, log, "a", gates["a"])
    _settle()
    b = _holder(budget, 60, log, "b", gates["b"])  # 120 > 100: waits for a
    _settle()
    c = _holder(budget, 30, log, "c", gates["c"])  # would fit beside a, but b came first
    _settle()
    assert [e[1] for e in log if e[0] == "in"] == ["a"] and budget.used == 60
    gates["a"].set()
    _settle()
    assert [e[1] for e in log if e[0] == "in"] == ["a", "b", "c"] and budget.used == 90
    d = _holder(budget, 500, log, "d", gates["d"])  # larger than the budget: alone, once all are out
    _settle()
    assert ("in", "d", 500) not in log
    gates["b"].set(), gates["c"].set()
    _settle()
    assert ("in", "d", 500) in log and budget.used == 500
    gates["d"].set()
    for t in (a, b, c, d):
        t.join(5)
    assert budget.used == 0 and budget.peak == 500


def test_an_error_inside_gives_the_pixels_back():
    budget = PixelBudget(10)
    with pytest.raises(ZeroDivisionError):
        with budget.hold(7):
            1 / 0
    assert budget.used == 0
    with pytest.raises(ValueError, match="positive"):
        PixelBudget(0)


def test_the_app_never_works_on_more_pixels_than_its_budget(tmp_path, predictor, photos):
    """A budget of 0.7 megapixels fits one CCP photo (about 0.45) but not two: four concurrent uploads
    all get their answer, one photo in work at a time."""
    pixels = [decode_image(p).shape[0] * decode_image(p).shape[1] for p in photos]
    app = create_app(make_settings(tmp_path, max_megapixels_in_flight=0.7), predictor=predictor)
    with TestClient(app) as c:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda p: post_image(c, p.read_bytes(), formats="coco_rle"), photos * 2))
        assert [r.status_code for r in answers] == [200] * len(answers)
        budget = app.state.engine.pixels
        assert budget.used == 0 and budget.peak == max(pixels)
        assert "tailor_pixels_in_flight 0.0" in c.get("/metrics").text
