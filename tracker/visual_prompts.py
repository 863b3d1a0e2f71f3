"""What a user points at: the box / point prompt of visual (``sam3trackervideo``) tracking.

The port checks almost nothing (it accepts boxes outside the frame and of zero area; it only
refuses points without labels), and a bad prompt found inside a forward pass would cost the
stream its frame. ``VisualPrompt`` refuses bad input where it is built, and again against the size
of the frame it will be placed on, with a ``ValueError`` naming the field.

A prompt makes one object per box; points (with their labels) belong to one object, so they go
with at most one box. A prompt with a ``tracker_id`` refines that object (one box at most).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Labels of the port: 1 = this pixel is the object, 0 = it is not.
POINT_LABELS = frozenset({0, 1})

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class VisualPrompt:
    """Boxes and labelled points, in pixels of the frame they were drawn on.

    Attributes:
        boxes: xyxy boxes, one object each.
        points: (x, y) clicks, all for one object.
        labels: one per point: 1 positive, 0 negative.
        tracker_id: the object to refine; None makes new objects.
        frame_id: the frame the coordinates refer to (None: the latest frame).
        class_name: what the object is called in detections.
        confidence: the score reported for the object (1.0 for a person's click).

    Examples:
        >>> prompt = VisualPrompt(boxes=[(10, 20, 60, 80)], points=[(30, 40)], labels=[1])
        >>> prompt.object_count
        1
        >>> prompt.check_frame(height=120, width=160)
    """

    boxes: tuple[Box, ...] = ()
    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()
    tracker_id: int | None = None
    frame_id: int | None = None
    class_name: str = "foreground"
    confidence: float = 1.0

    def __post_init__(self) -> None:
        # Accept lists / numpy arrays, keep tuples of plain numbers: the prompt is hashable and
        # cannot be changed behind the session's back.
        object.__setattr__(self, "boxes", _numbers(self.boxes, 4, "boxes"))
        object.__setattr__(self, "points", _numbers(self.points, 2, "points"))
        object.__setattr__(self, "labels", _labels(self.labels))
        if not self.boxes and not self.points:
            raise ValueError("boxes: a prompt needs at least one box or one point")
        if len(self.points) != len(self.labels):
            raise ValueError(
                f"labels: {len(self.points)} point(s) need as many labels (1 positive, 0 "
                f"negative), got {len(self.labels)}"
            )
        if self.points and len(self.boxes) > 1:
            raise ValueError(
                "points: points belong to one object but the prompt has several boxes; "
                "send one prompt per object"
            )
        object.__setattr__(self, "tracker_id", _integer(self.tracker_id, "tracker_id"))
        object.__setattr__(self, "frame_id", _integer(self.frame_id, "frame_id"))
        if self.tracker_id is not None:
            if self.tracker_id < 0:
                raise ValueError(f"tracker_id: must be >= 0, got {self.tracker_id}")
            if len(self.boxes) > 1:
                raise ValueError("boxes: refining tracker_id takes at most one box")
        if self.frame_id is not None and self.frame_id < 0:
            raise ValueError(f"frame_id: must be an integer >= 0, got {self.frame_id!r}")
        if not isinstance(self.class_name, str) or not self.class_name.strip():
            raise ValueError("class_name: must be a non-empty string")
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, numbers.Real):
            raise ValueError(f"confidence: must be a number in [0, 1], got {self.confidence!r}")
        object.__setattr__(self, "confidence", float(self.confidence))
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence: must be a number in [0, 1], got {self.confidence!r}")

    @property
    def object_count(self) -> int:
        """How many objects the prompt makes (new) or touches (refinement)."""
        return max(1, len(self.boxes))

    def check_frame(self, height: int, width: int) -> None:
        """Refuse coordinates that do not lie on a ``height`` x ``width`` frame.

        Raises:
            ValueError: ``boxes[i]`` outside the frame or of zero area, ``points[i]`` outside.
        """
        for i, (x0, y0, x1, y1) in enumerate(self.boxes):
            if x1 <= x0 or y1 <= y0:
                raise ValueError(
                    f"boxes[{i}]: {(x0, y0, x1, y1)} has zero area (needs x0 < x1 and y0 < y1)"
                )
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise ValueError(
                    f"boxes[{i}]: {(x0, y0, x1, y1)} is outside the {width}x{height} frame "
                    f"(xyxy pixels of the frame it was drawn on)"
                )
        for i, (x, y) in enumerate(self.points):
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"points[{i}]: {(x, y)} is outside the {width}x{height} frame")


def _integer(value: Any, field: str) -> int | None:
    # numpy integers (ids read from sv.Detections) count; bools and floats do not.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field}: must be an integer, got {value!r}")
    return int(value)


def _numbers(values: Any, size: int, field: str) -> tuple[Any, ...]:
    rows = [] if values is None else list(_rows(values, field))
    out = []
    for i, row in enumerate(rows):
        try:
            numbers = tuple(float(v) for v in row)
        except (TypeError, ValueError):
            raise ValueError(f"{field}[{i}]: must be {size} numbers, got {row!r}") from None
        if len(numbers) != size or not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"{field}[{i}]: must be {size} finite numbers, got {row!r}")
        out.append(numbers)
    return tuple(out)


def _rows(values: Any, field: str) -> Iterable[Any]:
    try:
        return iter(values.tolist() if hasattr(values, "tolist") else values)
    except TypeError:
        raise ValueError(f"{field}: must be a list, got {values!r}") from None


def _labels(values: Any) -> tuple[int, ...]:
    labels = [] if values is None else list(_rows(values, "labels"))
    for i, label in enumerate(labels):
        if isinstance(label, bool) or label not in POINT_LABELS:
            raise ValueError(f"labels[{i}]: must be 1 (positive) or 0 (negative), got {label!r}")
    return tuple(int(label) for label in labels)
