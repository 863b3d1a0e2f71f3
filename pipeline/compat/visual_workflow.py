"""The visual-tracking forms of Roboflow's video steps, resolved to a ``VisualStep``.

Two step forms track what boxes and points show (SAM3's ``sam3trackervideo`` tracker, which runs
on the loaded ``sam3video`` weights):

- ``roboflow_core/sam3_video@v1`` with ``tracking_mode: "visual"``: ``points`` (one object, as
  ``{"x", "y", "positive"}`` or ``[x, y]`` / ``[x, y, positive]``; a point without ``positive`` is
  positive, as in Roboflow) and/or ``boxes`` (one object each); ``visual_model_id`` (default
  ``sam3trackervideo``); ``threshold`` default 0.5. ``class_names`` and ``model_id`` belong to
  concept mode and are ignored, as Roboflow's block ignores them here.
- ``roboflow_core/segment_anything_2_video@v1``: ``boxes``; ``model_id`` must be
  ``sam3trackervideo`` (Roboflow's default ``sam2video/small`` and the other SAM2 sizes are refused
  by name: SAM2 is not run here); ``threshold`` default 0.0.

Both take ``prompt_mode`` / ``prompt_interval`` (``pipeline.compat.prompt_schedule``). ``boxes``
is a workflow input (``$inputs.<name>``, its value from ``workflows_parameters``: ``sv.Detections``
or a list of xyxy boxes) or a literal list of xyxy boxes, in pixels of the stream's frames. A
selector to another step's output (``$steps.detector.predictions``) is refused: sam3-stream runs
no detector blocks. ``threshold`` drops boxes whose confidence is below it before they are
prompted (Roboflow's block tracks them and never emits them: the same output, without spending
the object budget). Each box keeps its ``class_name`` (``data["class_name"]``, else
``"foreground"``) and confidence (1.0 for plain boxes and for points).

Errors are ``ValueError`` naming the field; ``pipeline.compat.workflow`` adds the step's name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv

from pipeline.compat.prompt_schedule import DEFAULT_PROMPT_INTERVAL, PROMPT_MODES, PromptSchedule
from tracker.inputs import check_threshold
from tracker.visual_prompts import Box, Point, VisualPrompt
from tracker.weights import REAL_MODEL

SAM2_VIDEO_BLOCK = "roboflow_core/segment_anything_2_video@v1"
VISUAL_MODEL_ID = "sam3trackervideo"
"""Roboflow's id of SAM3's visual tracker; it runs on ``facebook/sam3``'s weights."""
SAM2_DEFAULT_MODEL_ID = "sam2video/small"
"""Roboflow's default ``model_id`` of the SAM2 video block (SAM2: not run here)."""
SAM2_VIDEO_FIELDS = frozenset(
    {"type", "name", "images", "boxes", "model_id", "prompt_mode", "prompt_interval", "threshold"}
)
SAM3_VISUAL_THRESHOLD = 0.5
SAM2_THRESHOLD = 0.0
PROMPT_FIELDS = ("boxes", "points")
DEFAULT_CLASS_NAME = "foreground"

Resolve = Callable[[Any], Any]
"""Turns a field's value into its value for this run (``$inputs.<name>`` -> the parameter)."""


@dataclass(frozen=True)
class BoxPrompt:
    """One box of the step, an object of its own.

    Attributes:
        index: the box's position in the step's ``boxes`` (what errors name).
        xyxy: pixels of the stream's frames.
        class_name: the object's class name in detections.
        confidence: the object's confidence in detections.
    """

    index: int
    xyxy: Box
    class_name: str = DEFAULT_CLASS_NAME
    confidence: float = 1.0


@dataclass(frozen=True)
class VisualStep:
    """A visual-tracking step, resolved: what to prompt, when, and with which model.

    Attributes:
        name: the step's name.
        boxes: the boxes at or above ``threshold``, one object each.
        points: (x, y) pixels, all for one object (none: no point object).
        labels: one per point, 1 positive, 0 negative.
        schedule: which frames of each stream are prompted.
        threshold: the step's ``threshold`` (boxes below it were dropped).
        model: the checkpoint the tracker runs (``facebook/sam3`` or a local directory).
    """

    name: str
    boxes: tuple[BoxPrompt, ...]
    points: tuple[Point, ...]
    labels: tuple[int, ...]
    schedule: PromptSchedule
    threshold: float
    model: str

    @property
    def has_prompts(self) -> bool:
        return bool(self.boxes or self.points)


def upstream_selector(step: Mapping[str, Any]) -> str | None:
    """Why ``step`` cannot run when its ``boxes`` / ``points`` read another step, else None."""
    for field in PROMPT_FIELDS:
        value = step.get(field)
        if isinstance(value, str) and value.startswith("$steps."):
            upstream = value.split(".")[1]
            return (
                f"{field}: {value!r} reads step {upstream!r}, an upstream detector sam3-stream "
                f"does not run; give the {field} as a workflow input ('$inputs.{field}' with its "
                f"value in workflows_parameters) or as a literal list"
            )
    return None


def compile_sam3_visual(step: Mapping[str, Any], resolve: Resolve) -> VisualStep:
    """``sam3_video`` with ``tracking_mode: "visual"``."""
    if step.get("points") is None and step.get("boxes") is None:
        raise ValueError(
            "points: visual mode requires points, boxes, or both (Roboflow's rule); or use "
            "tracking_mode 'concept' with class_names"
        )
    threshold = _threshold(resolve(step.get("threshold")), SAM3_VISUAL_THRESHOLD)
    points, labels = labelled_points(resolve(step.get("points")))
    return VisualStep(
        name=step["name"],
        boxes=box_prompts(resolve(step.get("boxes")), threshold),
        points=points,
        labels=labels,
        schedule=_schedule(step, resolve),
        threshold=threshold,
        model=_visual_model(resolve(step.get("visual_model_id")), "visual_model_id"),
    )


def compile_sam2_video(step: Mapping[str, Any], resolve: Resolve) -> VisualStep:
    """``segment_anything_2_video``, run by SAM3's visual tracker (its fields checked by the
    caller against ``SAM2_VIDEO_FIELDS``)."""
    model_id = resolve(step.get("model_id"))
    if model_id is None:
        raise ValueError(
            f"model_id: not given, and Roboflow's default {SAM2_DEFAULT_MODEL_ID!r} is SAM2, "
            f"which sam3-stream does not run; set model_id {VISUAL_MODEL_ID!r} (SAM3's tracker)"
        )
    threshold = _threshold(resolve(step.get("threshold")), SAM2_THRESHOLD)
    return VisualStep(
        name=step["name"],
        boxes=box_prompts(resolve(step.get("boxes")), threshold),
        points=(),
        labels=(),
        schedule=_schedule(step, resolve),
        threshold=threshold,
        model=_visual_model(model_id, "model_id"),
    )


def box_prompts(value: Any, threshold: float = 0.0) -> tuple[BoxPrompt, ...]:
    """The boxes of ``value`` (``sv.Detections``, a list of xyxy, or None) at or above
    ``threshold``, each checked (four finite numbers, x0 < x1, y0 < y1, not negative)."""
    if value is None:
        return ()
    if isinstance(value, sv.Detections):
        confidences = (
            value.confidence if value.confidence is not None else np.ones(len(value))
        )  # (N,)
        names = value.data.get("class_name")
        rows = [
            BoxPrompt(
                index=i,
                xyxy=_box(i, xyxy),
                class_name=_class_name(names[i] if names is not None else None),
                confidence=float(confidences[i]),
            )
            for i, xyxy in enumerate(value.xyxy)  # (N, 4) float pixels
        ]
    elif isinstance(value, list | tuple | np.ndarray):
        rows = [BoxPrompt(index=i, xyxy=_box(i, xyxy)) for i, xyxy in enumerate(value)]
    else:
        raise ValueError(
            f"boxes: must be sv.Detections or a list of [x0, y0, x1, y1] boxes, got "
            f"{type(value).__name__}"
        )
    return tuple(row for row in rows if row.confidence >= threshold)


def labelled_points(value: Any) -> tuple[tuple[Point, ...], tuple[int, ...]]:
    """Roboflow's points (``{"x", "y", "positive"}`` or ``[x, y(, positive)]``) as points and
    labels (1 positive, 0 negative); ``positive`` absent means positive."""
    if value is None:
        return (), ()
    if not isinstance(value, list | tuple):
        raise ValueError(f"points: must be a list of points, got {type(value).__name__}")
    points: list[Any] = []
    labels: list[int] = []
    for i, raw in enumerate(value):
        if isinstance(raw, Mapping):
            if "x" not in raw or "y" not in raw:
                raise ValueError(f"points[{i}]: needs 'x' and 'y', got {dict(raw)!r}")
            xy, positive = (raw["x"], raw["y"]), raw.get("positive", True)
        elif isinstance(raw, list | tuple) and len(raw) in (2, 3):
            xy, positive = tuple(raw[:2]), (raw[2] if len(raw) == 3 else True)
        else:
            raise ValueError(
                f"points[{i}]: must be {{'x', 'y', 'positive'}} or [x, y(, positive)], got {raw!r}"
            )
        if positive not in (True, False, 0, 1):  # "false" would be truthy: refuse, do not guess
            raise ValueError(f"points[{i}]: positive must be true or false, got {positive!r}")
        if any(isinstance(v, bool) for v in xy):
            raise ValueError(f"points[{i}]: coordinates must be numbers, got {raw!r}")
        points.append(xy)
        labels.append(int(bool(positive)))
    if not points:
        return (), ()
    prompt = VisualPrompt(points=tuple(points), labels=tuple(labels))
    _check_coordinates(prompt)
    return prompt.points, prompt.labels


def _box(index: int, xyxy: Any) -> Box:
    try:
        prompt = VisualPrompt(boxes=(xyxy,))
        _check_coordinates(prompt)
    except ValueError as error:
        raise ValueError(f"boxes[{index}]" + str(error).removeprefix("boxes[0]")) from None
    return prompt.boxes[0]


def _check_coordinates(prompt: VisualPrompt) -> None:
    """Every rule of ``VisualPrompt.check_frame`` but the frame's size, known at the first frame."""
    for field, rows in (("boxes", prompt.boxes), ("points", prompt.points)):
        for i, row in enumerate(rows):
            if min(row) < 0:
                raise ValueError(f"{field}[{i}]: {row} has a negative coordinate (pixels from 0)")
    prompt.check_frame(height=sys.maxsize, width=sys.maxsize)


def _class_name(value: Any) -> str:
    name = str(value).strip() if value is not None else ""
    return name or DEFAULT_CLASS_NAME


def _threshold(value: Any, default: float) -> float:
    if value is None:
        return default
    return check_threshold(value)


def _schedule(step: Mapping[str, Any], resolve: Resolve) -> PromptSchedule:
    mode = step.get("prompt_mode", PROMPT_MODES[0])
    if mode not in PROMPT_MODES:
        raise ValueError(f"prompt_mode: {mode!r} is not one of {', '.join(PROMPT_MODES)}")
    interval = resolve(step.get("prompt_interval"))
    return PromptSchedule(mode, DEFAULT_PROMPT_INTERVAL if interval is None else interval)


def _visual_model(value: Any, field: str) -> str:
    if value is None or value == VISUAL_MODEL_ID:
        return REAL_MODEL
    if isinstance(value, str) and os.path.isdir(value):
        return value
    raise ValueError(
        f"{field}: {value!r} is not run here: sam3-stream tracks boxes and points with SAM3's "
        f"visual tracker only; use {VISUAL_MODEL_ID!r} (it shares the sam3video weights) or a "
        "local directory holding a SAM3 video checkpoint"
    )
