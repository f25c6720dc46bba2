"""The report as a browser shows it: headless Chromium renders the CCP report; the screenshot must be a
styled page with the class colours in its chart, every section heading must be in the DOM and every
<img> must have decoded (a deliberately broken data URI proves that check can fail)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from service.review.report.charts import CHARTS
from service.review.report.html import SECTIONS
from tests.review.report.chromium import dump_dom, require_chromium, screenshot, with_probe
from tests.review.report.htmlq import Doc

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


def decoded(dom: str) -> tuple[Doc, list[dict]]:
    doc = Doc(dom)
    body = next(a for t, a in doc.tags if t == "body")
    assert body.get("data-probe") == "done", "the image probe did not run; the DOM cannot tell"
    imgs = doc.imgs()
    assert int(body["data-images"]) == len(imgs)
    return doc, [a for a in imgs if a.get("data-decoded") != "yes"]


def test_screenshot_shows_a_styled_page_with_the_class_colours(chromium, ccp_report, ccp_input, tmp_path):
    png = screenshot(chromium, ccp_report, tmp_path / "shot.png", (1280, 2400), tmp_path / "profile")
    shot = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert shot.shape[:2] == (2400, 1280)
    colours = np.unique(shot.reshape(-1, 3), axis=0)
    assert len(colours) > 2000, f"only {len(colours)} distinct colours: a blank or unstyled page"
    assert np.abs(shot[20, 640] - (0x1E, 0x2A, 0x3A)).max() <= 2, "the dark header (inline CSS) is missing"
    # The class-distribution chart sits in the first 2400 px: its bars are flat fills of the class colours.
    garments = sorted((n for n in ccp_input.class_names[1:] if ccp_input.class_pixels[n]),
                      key=lambda n: -ccp_input.class_pixels[n])
    for name in garments[:6]:
        hits = int((np.abs(shot - np.array(ccp_input.color(name))).max(axis=2) <= 3).sum())
        assert hits > 400, f"{name} {ccp_input.color(name)} barely on screen ({hits} px)"


def test_dom_has_every_section_and_every_image_decoded(chromium, ccp_report, tmp_path):
    html = ccp_report.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(with_probe(html))
    doc, broken = decoded(dump_dom(chromium, probe, tmp_path / "profile"))
    assert [h.strip() for h in doc.headings] == list(SECTIONS.values())
    assert broken == [], [b.get("alt") for b in broken]
    imgs = doc.imgs()
    assert len(imgs) == html.count("<img ") == 20
    assert {c.title for c in CHARTS.values()} <= {a["alt"] for a in imgs}
    assert all(int(a["data-natural-width"]) > 50 for a in imgs)


def test_a_broken_data_uri_is_caught(chromium, ccp_report, tmp_path):
    html = ccp_report.read_text()
    # Keep the PNG signature, cut the rest: a data URI that looks right but cannot decode.
    broken_html, n = re.subn(r'(<img src="data:image/png;base64,iVBORw0KGgo)[^"]*(" alt="QA flags by check")',
                             r"\1AAAA\2", html)
    assert n == 1
    probe = tmp_path / "probe.html"
    probe.write_text(with_probe(broken_html))
    _, broken = decoded(dump_dom(chromium, probe, tmp_path / "profile"))
    assert [b.get("alt") for b in broken] == ["QA flags by check"]


def test_the_report_runs_no_script_even_if_one_slipped_in(chromium, ccp_report, tmp_path):
    html = ccp_report.read_text()
    page = tmp_path / "injected.html"
    page.write_text(html.replace("</body>", '<script>document.body.setAttribute("data-ran", "1")</script></body>'))
    dom = dump_dom(chromium, page, tmp_path / "profile")
    body = next(a for t, a in Doc(dom).tags if t == "body")
    assert "data-ran" not in body        # the report's CSP forbids scripts
    assert "<h2>" in dom                 # ... while the page itself rendered
