"""The ``data`` keys Roboflow's ``sam3_video`` block puts on every ``sv.Detections``.

Roboflow code reads ``detections.data["detection_id"]``, ``["prediction_type"]``,
``["parent_id"]`` and the image geometry keys (its serialisers, its active-learning and
cropping blocks all do); without them it stops with ``KeyError``. The tracker stays
Roboflow-free: the loop adds these keys to each result on its way to ``on_prediction``.

Values follow Roboflow's (inference 1.5, ``segment_anything_common/streaming_video.py`` and
``core_steps/common/utils.py``): one entry per detection, a fresh ``uuid4`` string per detection
per frame, the whole frame as parent and root (so coordinates are ``[0, 0]``), dimensions as
``[height, width]``. An empty result gets the same keys as empty arrays.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import numpy as np
import supervision as sv

PREDICTION_TYPE = "instance-segmentation"
"""What Roboflow's ``sam3_video`` block reports as ``prediction_type``: masks per object."""

ROBOFLOW_DATA_KEYS = (
    "detection_id",
    "parent_id",
    "root_parent_id",
    "image_dimensions",
    "prediction_type",
    "parent_coordinates",
    "root_parent_coordinates",
    "parent_dimensions",
    "root_parent_dimensions",
)
"""The keys ``add_roboflow_fields`` sets (``class_name`` is the tracker's own)."""


def add_roboflow_fields(
    detections: sv.Detections, frame: Any, *, parent_id: str = "image"
) -> sv.Detections:
    """``detections`` with Roboflow's per-detection ``data`` keys added.

    Args:
        detections: one frame's result (left unchanged: a new ``sv.Detections`` is returned,
            sharing its arrays).
        frame: the ``VideoFrame`` it came from (its ``image`` gives the dimensions).
        parent_id: Roboflow's parent id, the workflow's image input name (``"image"`` for
            ``InferencePipeline.init``, ``image_input_name`` for workflows).

    Examples:
        >>> from types import SimpleNamespace
        >>> frame = SimpleNamespace(image=np.zeros((48, 64, 3), np.uint8))
        >>> one = sv.Detections(xyxy=np.array([[1.0, 2.0, 3.0, 4.0]]))
        >>> fields = add_roboflow_fields(one, frame).data
        >>> fields["prediction_type"][0], fields["parent_id"][0], fields["image_dimensions"][0]
        ('instance-segmentation', 'image', array([48, 64]))
        >>> len(add_roboflow_fields(sv.Detections.empty(), frame).data["detection_id"])
        0
    """
    count = len(detections)
    height, width = frame.image.shape[:2]  # (H, W, 3)
    dimensions = np.tile(np.array([height, width], dtype=np.int64), (count, 1))  # (N, 2) [h, w]
    origin = np.zeros((count, 2), dtype=np.int64)  # (N, 2) [left_top_x, left_top_y]
    parents = np.array([parent_id] * count, dtype=object)  # (N,)
    fields = {
        "detection_id": np.array([str(uuid.uuid4()) for _ in range(count)], dtype=object),
        "parent_id": parents,
        "root_parent_id": parents.copy(),
        "image_dimensions": dimensions,
        "prediction_type": np.array([PREDICTION_TYPE] * count, dtype=object),
        "parent_coordinates": origin,
        "root_parent_coordinates": origin.copy(),
        "parent_dimensions": dimensions.copy(),
        "root_parent_dimensions": dimensions.copy(),
    }
    return dataclasses.replace(detections, data={**detections.data, **fields})
