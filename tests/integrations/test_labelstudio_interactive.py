"""Label Studio's interactive context as refine edits, the regions sent back and the runner-up meta, on drawn
logits with known answers (the real Label Studio runs these in test_labelstudio_live.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from models.card import read_card
from models.taxonomy import Taxonomy
from service.drafting.refine import EditError, Paint
from service.drafting.refined import Kept, refined_prediction
from service.drafting.scores import PhotoScores, region_alternatives
from service.formats import ls_brush
from service.integrations.labelstudio import parse_label_config
from service.integrations.labelstudio_interactive import (changed_classes, context_edits, interactive_context,
                                                          refined_regions, with_region_meta)
from tests.conftest import DEFAULT_MODEL

TAXONOMY = Taxonomy.from_dict(read_card(DEFAULT_MODEL, verify=False)["taxonomy"])
NAMES = TAXONOMY.names
H, W = 100, 80
CONFIG = ('<View><Image name="image" value="$image"/>'
          '<BrushLabels name="tag" toName="image" smart="true"><Label value="Dress"/><Label value="Skirt"/>'
          '<Label value="Jacket"/></BrushLabels>'
          '<KeyPointLabels name="click" toName="image" smart="true"><Label value="Dress"/><Label value="Skirt"/>'
          '<Label value="Unicorn"/></KeyPointLabels></View>')
MAPPING = {"outerwear": "Jacket"}


def drawn() -> PhotoScores:
    """A dress (skirt close behind) on the left half, a jacket on the right, background elsewhere."""
    logits = np.zeros((len(NAMES), H // 2, W // 2), dtype=np.float32)
    logits[0] = 4.0
    logits[:, 5:45, 2:20] = 0.0
    logits[NAMES.index("dress"), 5:45, 2:20], logits[NAMES.index("skirt"), 5:45, 2:20] = 3.0, 2.5
    logits[:, 5:45, 22:38] = 0.0
    logits[NAMES.index("outerwear"), 5:45, 22:38] = 3.0
    return PhotoScores(logits, (H, W), NAMES)


def keypoint(x: float, y: float, label: str, positive: bool = True) -> dict:
    """A smart keypoint as Label Studio 1.23's editor serialises it into the context."""
    return {"id": "k", "type": "keypointlabels", "from_name": "click", "to_name": "image", "origin": "manual",
            "original_width": W, "original_height": H, "image_rotation": 0, "is_positive": positive,
            "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [label], "labels": [label]}}


def test_only_a_context_with_regions_makes_a_request_interactive():
    assert interactive_context({"params": {"context": None}}) is None
    assert interactive_context({"params": {"context": {"result": []}}}) is None
    assert interactive_context({"tasks": []}) is None
    assert interactive_context({"params": {"context": {"result": [keypoint(1, 2, "Skirt")]}}})[0]["id"] == "k"


def test_keypoints_become_clicks_and_a_negative_one_a_removal_in_photo_pixels():
    scores = drawn()
    edits = context_edits([keypoint(25.0, 50.0, "Skirt"), keypoint(100.0, 0.0, "Dress", positive=False)], CONFIG,
                          scores, TAXONOMY)
    assert edits == [{"x": 20.0, "y": 50.0, "class": "skirt"}, {"kind": "remove", "x": 79.99992, "y": 0.0}]


def test_a_brush_stroke_paints_its_pixels_scaled_to_the_photo():
    stroke = np.zeros((2 * H, 2 * W), dtype=np.uint8)  # LS saw the photo at twice this size
    stroke[60:80, 20:40] = 1
    region = {**ls_brush.regions(stroke, {1: "Jacket"}, "tag", "image")[0], "id": "b"}
    (paint,) = context_edits([region], CONFIG, drawn(), TAXONOMY, MAPPING)
    assert isinstance(paint, Paint) and paint.class_id == NAMES.index("outerwear")
    expected = np.zeros((H, W), dtype=bool)
    expected[30:40, 10:20] = True
    np.testing.assert_array_equal(paint.mask, expected)


@pytest.mark.parametrize("region, message", [
    (keypoint(10, 10, "Unicorn"), "label 'Unicorn' of control 'click' is no class"),
    (keypoint(10, 120, "Skirt"), "percent of the image"),
    ({**keypoint(10, 10, "Skirt"), "type": "rectanglelabels"}, "'rectanglelabels' region"),
    ({**keypoint(10, 10, "Skirt"), "from_name": "elsewhere"}, "of control 'elsewhere' is no class"),
    ({"type": "brushlabels", "from_name": "tag", "value": {"format": "rle", "rle": [1, 2, 3], "brushlabels": ["Skirt"]},
      "original_width": W, "original_height": H}, "does not decode"),
])
def test_a_context_this_backend_cannot_use_is_an_edit_error(region, message):
    with pytest.raises(EditError, match=message):
        context_edits([region], CONFIG, drawn(), TAXONOMY, MAPPING)


def _refined(edits):
    scores = drawn()
    kept = Kept(scores, "hash", "v1", TAXONOMY, 0)
    return refined_prediction(kept, context_edits(edits, CONFIG, scores, TAXONOMY, MAPPING)), scores


def test_a_click_sends_back_the_changed_classes_under_the_drafts_ids_and_an_emptied_one_empty():
    refined, scores = _refined([keypoint(25.0, 50.0, "Skirt")])
    dress, skirt = NAMES.index("dress"), NAMES.index("skirt")
    assert changed_classes(refined) == [dress, skirt]
    config = parse_label_config(CONFIG)
    alternatives = region_alternatives(scores, refined.prediction.labels)
    answered = refined_regions(refined, config, TAXONOMY, alternatives, MAPPING)
    regions = {r["value"]["brushlabels"][0]: r for r in answered}
    assert set(regions) == {"Dress", "Skirt"}
    assert (regions["Dress"]["id"], regions["Skirt"]["id"]) == (f"tailor-brush-{dress}", f"tailor-brush-{skirt}")
    np.testing.assert_array_equal(ls_brush.decode(regions["Skirt"]["value"]["rle"], H, W),
                                  refined.prediction.labels == skirt)
    assert not ls_brush.decode(regions["Dress"]["value"]["rle"], H, W).any()  # the whole dress became a skirt
    # The skirt's meta: the model still prefers a dress there, which is what a reviewer wants to see.
    part = next(a for a in alternatives if a.class_name == "skirt")
    assert part.runner_up == "dress" and part.runner_up_probability > part.probability
    assert regions["Skirt"]["meta"]["text"] == [f"Skirt {part.probability:.2f}, Dress {part.runner_up_probability:.2f}"]
    assert "meta" not in regions["Dress"]  # nothing left of it to describe


def test_without_brush_labels_the_changed_classes_come_back_as_new_polygons():
    refined, scores = _refined([keypoint(25.0, 50.0, "Skirt")])
    config = parse_label_config('<View><Image name="image" value="$image"/><PolygonLabels name="poly" '
                                'toName="image"><Label value="Dress"/><Label value="Skirt"/><Label value="Jacket"/>'
                                '</PolygonLabels></View>')
    regions = refined_regions(refined, config, TAXONOMY, region_alternatives(scores, refined.prediction.labels),
                              MAPPING)
    assert {r["value"]["polygonlabels"][0] for r in regions} == {"Skirt"}  # the dress is gone, the jacket untouched
    assert all(r["id"].startswith("tailor-refined-poly-") and r["type"] == "polygonlabels" for r in regions)


def test_region_meta_names_labels_and_the_parts_of_a_class():
    scores = drawn()
    labels = scores.draft()
    labels[80:90, 5:15] = NAMES.index("outerwear")  # a second, smaller jacket part
    alternatives = region_alternatives(scores, labels)
    regions = [{"type": "brushlabels", "value": {"brushlabels": ["Jacket"]}},
               {"type": "polygonlabels", "value": {"polygonlabels": ["Dress"]}},
               {"type": "brushlabels", "value": {"brushlabels": ["Skirt"]}}]
    config = parse_label_config(CONFIG.replace("</View>", '<PolygonLabels name="poly" toName="image">'
                                                          '<Label value="Dress"/></PolygonLabels></View>'))
    jacket, dress, skirt = with_region_meta(regions, alternatives, config, TAXONOMY, MAPPING)
    assert jacket["meta"]["text"][0].startswith("Jacket ") and "(the largest of 2 parts)" in jacket["meta"]["text"][0]
    assert [p["area"] for p in jacket["meta"]["tailor_regions"]] == sorted(
        (p["area"] for p in jacket["meta"]["tailor_regions"]), reverse=True)
    assert ", Skirt 0." in dress["meta"]["text"][0] and "meta" not in skirt  # no skirt was drafted

