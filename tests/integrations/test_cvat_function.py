"""The CVAT auto-annotation function through cvat-sdk's own interface, on real CCP photos, without a server.

cvat-sdk's driver objects (the detection context and the annotation mapper that validates a function's
output) check the shapes; masks are decoded with the sdk's decode_mask and compared with the predictor's.
"""
from __future__ import annotations

import logging

import numpy as np
import PIL.Image
import pytest

import cvat_sdk.models as models
from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl
from cvat_sdk.masks import decode_mask
from models.images import decode_image
from service.formats import polygons
from service.integrations.cvat import GarmentMasks


def _context(conv_mask_to_poly: bool = False, conf_threshold=None):
    return _DetectionFunctionContextImpl(frame_name="frame.jpg", conf_threshold=conf_threshold,
                                         conv_mask_to_poly=conv_mask_to_poly)


def _validated(function, shapes, conv_mask_to_poly: bool = False):
    """What annotate_task would upload: the sdk maps our label ids onto a task's labels and checks every shape."""
    task_labels = [models.Label(name=label.name, id=100 + label.id, type="any", attributes=[], sublabels=[])
                   for label in function.spec.labels]
    mapper = _AnnotationMapper(logging.getLogger("test"), function.spec.labels, task_labels,
                               allow_unmatched_labels=False, conv_mask_to_poly=conv_mask_to_poly)
    tags, mapped = mapper.validate_and_remap(shapes, 0)
    assert tags == [] and len(mapped) == len(shapes)
    return mapped


@pytest.fixture(scope="module")
def frames(photos):
    return [decode_image(p) for p in photos[:2]]


def test_spec_declares_every_garment_class_as_a_mask_label(predictor):
    spec = GarmentMasks(predictor=predictor).spec
    assert [(label.name, label.id, label.type) for label in spec.labels] == \
        [(c.name, c.id, "mask") for c in predictor.taxonomy.classes if c.id != 0]


def test_masks_decode_to_the_predictors_label_map(predictor, frames):
    function = GarmentMasks(predictor=predictor)
    for rgb in frames:
        shapes = function.detect(_context(), PIL.Image.fromarray(rgb))
        class_ids = [s.label_id for s in shapes]
        mapped = _validated(function, shapes)  # remaps label ids in place, as annotate_task does
        expected = predictor.predict(rgb).labels
        h, w = expected.shape
        rebuilt = np.zeros_like(expected)
        for shape, cid in zip(mapped, class_ids):
            assert shape.type.value == "mask" and shape.label_id == 100 + cid
            rebuilt[decode_mask(shape.points, image_width=w, image_height=h)] = cid
        np.testing.assert_array_equal(rebuilt, expected)


def test_the_service_over_http_gives_the_same_shapes(client, predictor, frames):
    local, remote = GarmentMasks(predictor=predictor), GarmentMasks(client=client)
    assert [label.name for label in remote.spec.labels] == [label.name for label in local.spec.labels]
    image = PIL.Image.fromarray(frames[0])
    a, b = local.detect(_context(), image), remote.detect(_context(), image)
    assert [(s.label_id, s.points) for s in a] == [(s.label_id, s.points) for s in b]


def test_polygons_when_cvat_converts_masks(predictor, frames):
    function = GarmentMasks(predictor=predictor)
    shapes = function.detect(_context(conv_mask_to_poly=True), PIL.Image.fromarray(frames[0]))
    assert shapes and all(s.type.value == "polygon" and len(s.points) >= 6 for s in shapes)
    expected = predictor.predict(frames[0]).labels
    h, w = expected.shape
    pants = predictor.taxonomy.names.index("pants")
    drawn = polygons.decode([{"exterior": np.reshape(s.points, (-1, 2)).tolist(), "holes": []}
                             for s in shapes if s.label_id == pants], h, w)
    _validated(function, shapes, conv_mask_to_poly=True)  # the sdk refuses masks here
    truth = expected == pants
    assert (drawn & truth).sum() / (drawn | truth).sum() > 0.9


def test_confidence_threshold_drops_unsure_classes(predictor, frames):
    from service.drafting.answer import class_summaries

    pred = predictor.predict(frames[0])
    scores = {e["id"]: e["score"] for e in class_summaries(pred.labels, pred.confidence, predictor.taxonomy)}
    threshold = float(np.median([s for c, s in scores.items() if c != 0]))
    function = GarmentMasks(predictor=predictor)
    shapes = function.detect(_context(conf_threshold=threshold), PIL.Image.fromarray(frames[0]))
    assert sorted(s.label_id for s in shapes) == sorted(c for c, s in scores.items() if c != 0 and s >= threshold)
    assert 0 < len(shapes) < len(scores) - 1
