"""SAM3 frame results -> ``supervision.Detections``, the type every sink consumes."""

from __future__ import annotations

import numpy as np
import supervision as sv


def to_detections(
    masks: np.ndarray,
    confidence: np.ndarray,
    tracker_score: np.ndarray,
    tracker_ids: np.ndarray,
    class_names_per_object: list[str],
    class_names: tuple[str, ...],
) -> sv.Detections:
    """Build Detections per DESIGN.md; ``xyxy`` comes from the final masks.

    Args:
        masks: (N, H, W) bool at the original frame resolution.
        confidence: (N,) SAM3 detection score.
        tracker_score: (N,) tracker score on this frame.
        tracker_ids: (N,) int64 global ids.
        class_names_per_object: the concept text of each object.
        class_names: the stream's normalised class list; ``class_id`` indexes it.
    """
    if len(masks) == 0:
        return empty_detections()
    index = {name: i for i, name in enumerate(class_names)}
    return sv.Detections(
        xyxy=sv.mask_to_xyxy(masks).astype(np.float32),  # (N, 4) pixels
        mask=masks.astype(bool),  # (N, H, W)
        confidence=confidence.astype(np.float32),
        class_id=np.array([index[name] for name in class_names_per_object], dtype=int),
        tracker_id=tracker_ids.astype(np.int64),
        data={
            "class_name": np.array(class_names_per_object, dtype=object),
            "tracker_score": tracker_score.astype(np.float32),
        },
    )


def empty_detections() -> sv.Detections:
    """No objects, with the same fields as a non-empty result so sinks need no special case."""
    detections = sv.Detections.empty()
    detections.tracker_id = np.empty(0, dtype=np.int64)
    detections.data = {
        "class_name": np.empty(0, dtype=object),
        "tracker_score": np.empty(0, dtype=np.float32),
    }
    return detections
