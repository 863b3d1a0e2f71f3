"""sinks.annotate and sinks.detections_from: what every sink draws and reads."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

import sinks
from sinks.annotate import annotated_frame, labels_for
from tests.sinks_helpers import make_detections, make_frame


def test_annotate_returns_a_new_image_and_leaves_the_frame_untouched() -> None:
    frame = make_frame()
    before = frame.image.copy()

    annotated = sinks.annotate(frame.image, make_detections())

    assert annotated is not frame.image
    assert annotated.shape == frame.image.shape and annotated.dtype == np.uint8
    np.testing.assert_array_equal(frame.image, before)
    assert not np.array_equal(annotated, before)


def test_annotate_colours_masks_by_tracker_id_not_by_class() -> None:
    frame = make_frame()
    detections = make_detections()
    detections.class_id = np.zeros(len(detections), dtype=int)  # same class, different tracks
    renumbered = make_detections(first_tracker_id=5)
    renumbered.class_id = detections.class_id

    first = sinks.annotate(frame.image, detections)
    second = sinks.annotate(frame.image, renumbered)

    inside = (slice(60, 76), slice(25, 46))  # within the first ellipse, clear of box and label
    assert detections.mask[0][inside].all()
    colours = {tuple(first[inside][0, 0]), tuple(second[inside][0, 0])}
    assert len(colours) == 2, "a different tracker id must give a different mask colour"


def test_labels_name_class_track_and_confidence() -> None:
    assert labels_for(make_detections()) == ["person #1 0.90", "forklift #2 0.50"]


def test_annotate_without_masks_or_tracker_ids_still_draws_boxes() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    boxes_only = sv.Detections(xyxy=np.array([[8, 8, 40, 40]], np.float32))

    assert sinks.annotate(image, boxes_only).any()
    np.testing.assert_array_equal(sinks.annotate(image, sv.Detections.empty()), image)


def test_annotated_frame_draws_each_frame_once_for_every_sink() -> None:
    frame, detections = make_frame(), make_detections()

    first = annotated_frame(detections, frame)

    assert annotated_frame(detections, frame) is first
    assert not first.flags.writeable, "shared between sinks, so nobody may draw on it"
    np.testing.assert_array_equal(first, sinks.annotate(frame.image, detections))


def test_detections_from_accepts_detections_and_workflow_results() -> None:
    detections = make_detections()

    assert sinks.detections_from(detections) is detections
    assert sinks.detections_from({"predictions": detections, "count": 2}) is detections
    assert len(sinks.detections_from(None)) == 0
    assert len(sinks.detections_from({"image": np.zeros(3)})) == 0
    merged = sinks.detections_from({"a": detections, "b": make_detections(first_tracker_id=9)})
    assert merged.tracker_id.tolist() == [1, 2, 9, 10]


def test_detections_from_rejects_other_types() -> None:
    with pytest.raises(TypeError, match=r"sv\.Detections or a workflow result dict"):
        sinks.detections_from([1, 2, 3])
