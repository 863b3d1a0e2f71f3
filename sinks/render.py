"""Turn one frame and its detections into the picture a person sees: the one drawing path.

``render_boxes`` (Roboflow's sink), ``ScreenSink`` and ``VideoFileSink`` all draw through
``render_frame``, so a window and a video file of the same frame show the same pixels for the same
options. The steps and their defaults follow Roboflow's ``render_boxes``: annotate, letterbox to
``display_size``, then draw the latency and throughput statistics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import cv2
import numpy as np
import supervision as sv

from sinks.annotate import annotated_frame, labels_for
from sinks.predictions import detections_from

logger = logging.getLogger(__name__)

ImageWithSourceID = tuple[int | None, np.ndarray]
"""What ``render_boxes`` hands ``on_frame_rendered``: ``(source_id or batch position, image)``."""

DEFAULT_FPS_MONITOR = sv.FPSMonitor()
"""Roboflow's process-wide monitor: every ``render_boxes`` call without its own ticks this one."""

EMPTY_FRAME_SIZE = 256
"""Side of the black square drawn for a source that had no frame in a batch, as Roboflow does."""

STATISTICS_COLOR = (0, 255, 0)
"""BGR green of the LATENCY / THROUGHPUT lines, Roboflow's colour, font, scale and thickness."""
STATISTICS_FONT = cv2.FONT_HERSHEY_SIMPLEX
STATISTICS_SCALE = 0.8
STATISTICS_THICKNESS = 2


def render_frame(
    predictions: Any,
    frame: Any,
    *,
    annotators: Sequence[Any] | None = None,
    display_size: tuple[int, int] | None = None,
    display_statistics: bool = False,
    fps_value: float | None = None,
) -> np.ndarray:
    """Draw one frame: annotations, letterbox, statistics; the frame's own image is untouched.

    Args:
        predictions: ``sv.Detections`` or a workflow result dict holding them (``None``: nothing).
        frame: a ``VideoFrame`` (read by attribute), or None for a source with no frame this
            round: a black ``EMPTY_FRAME_SIZE`` square is drawn instead.
        annotators: supervision annotators applied in order (an ``sv.LabelAnnotator`` gets the
            class names as labels, as Roboflow's does); None draws ours (``sinks.annotate``:
            masks, boxes and ``"class #id score"`` labels, coloured per tracker id).
        display_size: ``(width, height)`` to letterbox into (aspect kept, black bars centred), or
            None for the native size.
        display_statistics: draw ``LATENCY`` (now minus ``frame_timestamp``) and, when
            ``fps_value`` is given, ``THROUGHPUT`` in the bottom-left corner.
        fps_value: the throughput to show.

    Returns:
        (H, W, 3) uint8 BGR, a new writable array.
    """
    if frame is None:
        image = np.zeros((EMPTY_FRAME_SIZE, EMPTY_FRAME_SIZE, 3), dtype=np.uint8)
    else:
        image = _annotated(predictions, frame, annotators)
    if display_size is not None:
        width, height = int(display_size[0]), int(display_size[1])
        if image.shape[:2] != (height, width):
            image = sv.letterbox_image(image, (width, height))
    if not image.flags.writeable:  # the shared annotation cache's copy: callers may draw on theirs
        image = image.copy()
    if display_statistics:
        render_statistics(
            image, frame_timestamp=None if frame is None else frame.frame_timestamp, fps=fps_value
        )
    return image


def annotator_list(annotator: Any) -> list[Any] | None:
    """Roboflow's ``annotator=`` (None, one annotator, or a list of them) as a list, or None."""
    if annotator is None:
        return None
    if isinstance(annotator, list | tuple):
        return list(annotator)
    return [annotator]


def render_statistics(
    image: np.ndarray, frame_timestamp: datetime | None, fps: float | None
) -> np.ndarray:
    """Draw Roboflow's ``LATENCY: x ms`` and ``THROUGHPUT: y`` lines on ``image`` (in place).

    Latency is measured against the wall clock in the timestamp's own convention, so a naive
    local ``frame_timestamp`` (Roboflow's) and an aware one both work.
    """
    height = image.shape[0]
    if frame_timestamp is not None:
        now = datetime.now(frame_timestamp.tzinfo)
        latency = round((now - frame_timestamp).total_seconds() * 1000, 2)
        cv2.putText(
            image,
            f"LATENCY: {latency} ms",
            (10, height - 10),
            STATISTICS_FONT,
            STATISTICS_SCALE,
            STATISTICS_COLOR,
            STATISTICS_THICKNESS,
        )
    if fps is not None:
        cv2.putText(
            image,
            f"THROUGHPUT: {round(fps, 2)}",
            (10, height - 50),
            STATISTICS_FONT,
            STATISTICS_SCALE,
            STATISTICS_COLOR,
            STATISTICS_THICKNESS,
        )
    return image


def _annotated(predictions: Any, frame: Any, annotators: Sequence[Any] | None) -> np.ndarray:
    try:
        detections = detections_from(predictions)
    except TypeError:
        # Roboflow's render_boxes shows the bare frame for predictions it cannot read; so do we.
        logger.warning(
            "render_boxes got predictions of type %s, not sv.Detections or a workflow result: "
            "showing the frame without annotations",
            type(predictions).__name__,
        )
        return np.array(frame.image)
    if annotators is None:
        return annotated_frame(detections, frame)
    image = frame.image.copy()
    for annotator in annotators:
        if isinstance(annotator, sv.LabelAnnotator | sv.RichLabelAnnotator):
            image = annotator.annotate(image, detections, labels=_class_labels(detections))
        else:
            image = annotator.annotate(image, detections)
    return np.asarray(image)


def _class_labels(detections: sv.Detections) -> list[str]:
    """The class name alone per object, as Roboflow labels; ids when there are no names."""
    names = detections.data.get("class_name")
    if names is None:
        return labels_for(detections)
    return [str(name) for name in names]
