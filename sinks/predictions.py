"""Turn what ``on_prediction`` receives into the one shape every sink draws and serialises."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import supervision as sv

logger = logging.getLogger(__name__)


def detections_from(predictions: Any) -> sv.Detections:
    """Return the ``sv.Detections`` held by ``predictions``.

    ``InferencePipeline.init`` hands sinks an ``sv.Detections``; ``init_with_workflow`` hands them
    the workflow result dict keyed by output name (the ``sam3_video`` block puts its detections
    under ``"predictions"``). Every sink accepts both, so they all go through here.

    Args:
        predictions: an ``sv.Detections``, a workflow result dict whose values include
            ``sv.Detections``, or ``None`` (a frame with nothing to report).

    Returns:
        The detections; several ``sv.Detections`` outputs are merged in key order, none gives
        ``sv.Detections.empty()``.

    Raises:
        TypeError: ``predictions`` is neither form; that is a bug in the caller, not user input.

    Examples:
        >>> import numpy as np, supervision as sv
        >>> d = sv.Detections(xyxy=np.zeros((1, 4), np.float32))
        >>> detections_from({"predictions": d, "count": 1}) is d
        True
    """
    if isinstance(predictions, sv.Detections):
        return predictions
    if predictions is None:
        return sv.Detections.empty()
    if isinstance(predictions, Mapping):
        found = [value for value in predictions.values() if isinstance(value, sv.Detections)]
        if not found:
            return sv.Detections.empty()
        if len(found) == 1:
            return found[0]
        return sv.Detections.merge(found)
    raise TypeError(
        f"sinks expect sv.Detections or a workflow result dict, got {type(predictions).__name__}"
    )


def iter_frames(predictions: Any, video_frame: Any) -> Iterator[tuple[Any, Any]]:
    """Yield ``(predictions, frame)`` pairs from a single call or a multi-source batch call.

    Roboflow's pipeline calls sinks with lists (one entry per source, ``None`` for a source that had
    no frame this round) when it runs several sources; code written against it still works here.
    """
    if isinstance(video_frame, list | tuple):
        if isinstance(predictions, list | tuple):
            per_frame = list(predictions)
        else:
            per_frame = [predictions] * len(video_frame)
        for frame_predictions, frame in zip(per_frame, video_frame, strict=False):
            if frame is not None:
                yield frame_predictions, frame
        return
    yield predictions, video_frame
