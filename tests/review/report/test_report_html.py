"""render_html on a drawn batch with known answers: the numbers in its tables, escaping of user text,
no external URL, and a stated reason wherever a chart has no data."""
from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from service.review.report.charts import OPEN, RESOLVED, render_charts
from service.review.report.html import SECTIONS, render_html
from tests.review.report.drawn import EVIL_NAME, SCRIPT_NOTE, URL_NOTE, drawn_input
from tests.review.report.htmlq import Doc


@pytest.fixture
def page(drawn):
    charts = render_charts(drawn)
    return render_html(drawn, charts), charts


def rgb_count(png: bytes, rgb, tol: int = 2) -> int:
    import numpy as np

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).max(axis=2) <= tol).sum())


def test_class_table_shows_the_drawn_counts(page):
    doc = Doc(page[0])
    t = doc.table("classes")
    assert t["pants"][1:] == ["70", "23.3%", "63.6%", "2", "100%"]       # 70 of 300 px; 70 of 110 garment px
    assert t["top"][1] == "30" and t["top"][4] == "1"
    assert t["shoes"][1] == "10" and t["shoes"][4] == "1"
    assert t["background"][1] == "190" and t["background"][4] == "2"
    assert t["legwear"][1] == "0" and t["legwear"][4] == "0"


def test_flags_and_checklist_count_resolved_and_open(page):
    doc = Doc(page[0])
    flags = doc.table("flags")
    assert flags["islands"][2:6] == ["1", "1", "0", "100%"]
    assert flags["overlaps"][2:6] == ["1", "0", "1", "0%"]
    assert flags["missing_classes"][2:5] == ["0", "0", "0"]
    still_open = doc.table("flags", 1)                # the "flags still open" list
    assert list(still_open) == ["image", "b-02"] and still_open["b-02"][1] == "overlaps"
    checklist = doc.table("checklist")
    assert checklist["Clean overlaps"][1] == "1 / 2" and checklist["No stray islands"][1] == "2 / 2"
    assert checklist["Flags resolved"][1] == "1 / 2"
    assert "1 of 2 images pass every line" in page[0]


def test_effort_tables_show_each_versions_changed_pixels(page):
    doc = Doc(page[0])
    by_class, by_version = doc.table("effort", 0), doc.table("effort", 1)
    assert by_version["v1"][1:3] == ["1", "20.0%"]      # 20 of 100 px: pants drafted as legwear
    assert by_version["v2"][1:3] == ["1", "0.0%"]
    assert by_class["pants"][2] == "0.50"               # IoU 0 on a-01 (v1), 1 on b-02 (v2)
    assert by_class["pants"][4:] == ["0.00", "1.00"]


def test_user_text_is_escaped(page):
    html = page[0]
    assert SCRIPT_NOTE not in html and "<script" not in html.lower()
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; more" in html
    assert EVIL_NAME not in html and "&lt;b&gt;eve&lt;/b&gt;" in html


def test_self_contained_without_any_url(page):
    html, charts = page
    doc = Doc(html)
    for tag, attrs in doc.tags:
        for name in ("src", "href"):
            if name in attrs:
                assert not re.match(r"\s*(https?:)?//", attrs[name]), (tag, attrs[name][:80])
                assert attrs[name].startswith("data:" if name == "src" else "#"), (tag, attrs[name][:80])
    assert not re.search(r"url\(|@import|<link|<script", html, re.I)
    assert URL_NOTE in html                             # shown as text, never as a link
    srcs = [a["src"] for a in doc.imgs()]
    assert len(srcs) == len(charts) + 2                 # a-01's thumbnail, in the hardest list and the gallery
    for src in srcs:
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()


def test_all_sections_and_a_reason_for_each_missing_chart(page):
    html, charts = page
    assert Doc(html).headings == list(SECTIONS.values())
    assert set(charts) == {"class_distribution", "qa_flags", "effort_by_class", "effort_by_version"}
    assert "No image was corrected by two annotators" in html
    assert "span a single day" in html
    alts = {a["alt"] for a in Doc(html).imgs()}
    assert "Agreement between annotators by class" not in alts and "Class distribution" in alts


def test_charts_are_drawn_in_the_class_colours(page, drawn):
    charts = page[1]
    for name in ("pants", "top", "shoes"):
        assert rgb_count(charts["class_distribution"], drawn.color(name)) > 500, name
    assert rgb_count(charts["class_distribution"], drawn.color("legwear")) == 0   # no legwear in the finals
    flags_png = charts["qa_flags"]
    for colour in (RESOLVED, OPEN):
        assert rgb_count(flags_png, tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))) > 500


def test_no_garment_pixels_means_no_distribution_chart(tax):
    data = drawn_input(tax, class_pixels={"background": 300}, class_images={"background": 2})
    charts = render_charts(data)
    assert "class_distribution" not in charts
    assert "The final masks hold no garment pixels" in render_html(data, charts)


def test_an_undecodable_thumbnail_becomes_a_placeholder(tax):
    data = drawn_input(tax)
    data.images[0].overlay_png = b"\x89PNG\r\n\x1a\n not really a png"
    html = render_html(data, render_charts(data))
    assert len(Doc(html).imgs()) == 4                   # the four charts only
    assert html.count('<div class="noimg">no thumbnail</div>') == 3   # twice for a-01, once b-02 (hardest)


def test_an_empty_batch_renders_with_every_chart_explained(tax):
    data = drawn_input(tax, images=[], class_pixels={}, class_images={}, effort={}, effort_over_time=[],
                       batch_checklist=None)
    charts = render_charts(data)
    html = render_html(data, charts)
    assert charts == {} and Doc(html).imgs() == []
    assert Doc(html).headings == list(SECTIONS.values())
    for reason in ("no garment pixels", "No QA flag was raised", "No image had a model draft",
                   "No image has a QA checklist yet", "No overlay thumbnails"):
        assert reason in html, reason
