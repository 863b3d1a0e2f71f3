"""Draw detections on a frame: masks and boxes coloured per tracker id, one label per object."""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from typing import Any

import numpy as np
import supervision as sv

from sinks.predictions import detections_from

logger = logging.getLogger(__name__)

LABEL_FORMAT = "{class_name} #{tracker_id} {confidence:.2f}"
"""One label per object, as the issue fixes it; absent fields are left out, not shown as None."""


@functools.cache
def _annotators(
    lookup: sv.ColorLookup,
) -> tuple[sv.MaskAnnotator, sv.BoxAnnotator, sv.LabelAnnotator]:
    # Annotators keep no per-call state, so one set per colour lookup serves every thread.
    return (
        sv.MaskAnnotator(color_lookup=lookup),
        sv.BoxAnnotator(color_lookup=lookup),
        sv.LabelAnnotator(color_lookup=lookup),
    )


def labels_for(detections: sv.Detections) -> list[str]:
    """``"{class_name} #{tracker_id} {confidence:.2f}"`` per object, skipping absent fields."""
    class_names = detections.data.get("class_name")
    labels = []
    for index in range(len(detections)):
        parts = []
        if class_names is not None:
            parts.append(str(class_names[index]))
        elif detections.class_id is not None:
            parts.append(str(int(detections.class_id[index])))
        if detections.tracker_id is not None:
            parts.append(f"#{int(detections.tracker_id[index])}")
        if detections.confidence is not None:
            parts.append(f"{float(detections.confidence[index]):.2f}")
        labels.append(" ".join(parts))
    return labels


def annotate(image_bgr: np.ndarray, detections: Any) -> np.ndarray:
    """Return a copy of ``image_bgr`` with masks, boxes and labels drawn; the input is untouched.

    Colours follow ``tracker_id`` (``ColorLookup.TRACK``) so an object keeps its colour while it is
    tracked, which is what a person watching the stream uses to follow it. Detections without
    tracker ids fall back to per-index colours.

    Args:
        image_bgr: (H, W, 3) uint8, BGR.
        detections: ``sv.Detections`` (or a workflow result dict holding them), in pixels of
            ``image_bgr``; ``mask`` (N, H, W) bool when present.

    Returns:
        (H, W, 3) uint8 BGR, a new array.

    Examples:
        >>> import numpy as np, supervision as sv
        >>> image = np.zeros((48, 64, 3), np.uint8)
        >>> boxes = sv.Detections(
        ...     xyxy=np.array([[8, 8, 40, 40]], np.float32), tracker_id=np.array([7])
        ... )
        >>> bool(annotate(image, boxes).any()), bool(image.any())
        (True, False)
    """
    detections = detections_from(detections)
    scene = image_bgr.copy()
    if len(detections) == 0:
        return scene
    lookup = sv.ColorLookup.TRACK if detections.tracker_id is not None else sv.ColorLookup.INDEX
    mask_annotator, box_annotator, label_annotator = _annotators(lookup)
    if detections.mask is not None:
        scene = mask_annotator.annotate(scene, detections)
    scene = box_annotator.annotate(scene, detections)
    return label_annotator.annotate(scene, detections, labels=labels_for(detections))


class _RecentAnnotations:
    """The last few annotated frames, so the screen and the video file do not both draw one frame.

    Keyed by object identity of the frame's image and the detections; the entries hold strong
    references, so an identity cannot be recycled while it is a key.
    """

    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._entries: deque[tuple[np.ndarray, sv.Detections, np.ndarray]] = deque(maxlen=size)

    def get(self, image: np.ndarray, detections: sv.Detections) -> np.ndarray:
        with self._lock:
            for known_image, known_detections, annotated in self._entries:
                if known_image is image and known_detections is detections:
                    return annotated
        annotated = annotate(image, detections)
        annotated.flags.writeable = False
        with self._lock:
            self._entries.append((image, detections, annotated))
        return annotated


_RECENT = _RecentAnnotations()


def annotated_frame(detections: sv.Detections, frame: Any) -> np.ndarray:
    """``annotate(frame.image, detections)``, shared between sinks; the result is read-only."""
    return _RECENT.get(frame.image, detections)
