"""Which of a re-prompt's boxes are objects already tracked: the IoU match rule, in one place.

When a visual-tracking step reads its boxes again (``every_n_frames`` / ``every_frame``), a box
that overlaps a tracked object's last box with IoU >= ``MATCH_IOU`` refines that object (its id is
kept), a box that matches none makes a new object, and a tracked object that no box matches ends.
Roboflow's blocks instead start a new session on every re-prompt and restart their ids; a stream
here keeps its ids for what is still there.

Pairs are taken greedily, highest IoU first (ties: lower box index, then lower tracker id), each box
and each object used once: deterministic, and for the few boxes of one frame as good as an optimal
assignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv

from tracker.visual_prompts import Box

MATCH_IOU = 0.5
"""A box refines a tracked object when their IoU is at least this."""


@dataclass(frozen=True)
class BoxMatch:
    """The outcome of matching one frame's boxes against the tracked objects.

    Attributes:
        refined: box index -> tracker id of the object it refines.
        new: indices of boxes that make new objects, ascending.
        ended: tracker ids of tracked objects no box matched, ascending.
    """

    refined: dict[int, int]
    new: tuple[int, ...]
    ended: tuple[int, ...]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes (0.0 when they do not overlap)."""
    return float(sv.box_iou_batch(np.array([a]), np.array([b]))[0, 0])


def match_boxes(
    boxes: Sequence[Box], tracked: Mapping[int, Box], min_iou: float = MATCH_IOU
) -> BoxMatch:
    """Match ``boxes`` (xyxy pixels) to ``tracked`` (tracker id -> last xyxy box).

    Examples:
        >>> boxes = [(0, 0, 10, 10), (50, 50, 60, 60)]
        >>> match = match_boxes(boxes, {7: (1, 1, 11, 11), 8: (90, 90, 99, 99)})
        >>> match.refined, match.new, match.ended
        ({0: 7}, (1,), (8,))
    """
    ids = list(tracked)
    ious: np.ndarray
    if not boxes or not ids:
        ious = np.zeros((len(boxes), len(ids)))
    else:
        # (len(boxes), len(ids)) IoU of every box with every tracked object's last box
        ious = sv.box_iou_batch(np.array(boxes, dtype=float), np.array([tracked[i] for i in ids]))
    pairs = sorted(
        (-float(ious[index, column]), index, tracker_id)
        for index in range(len(boxes))
        for column, tracker_id in enumerate(ids)
    )
    refined: dict[int, int] = {}
    taken: set[int] = set()
    for negative_iou, index, tracker_id in pairs:
        if -negative_iou < min_iou:
            break
        if index in refined or tracker_id in taken:
            continue
        refined[index] = tracker_id
        taken.add(tracker_id)
    return BoxMatch(
        refined=dict(sorted(refined.items())),
        new=tuple(index for index in range(len(boxes)) if index not in refined),
        ended=tuple(sorted(set(tracked) - taken)),
    )
