"""First-frame visual prompts of ``sam3-stream run``: ``--box`` / ``--point`` and ``prompts:``.

One schema for both, so a flag and a config field are refused with the same words. In YAML each
entry of ``prompts`` is ONE object (one ``VisualPrompt`` with at most one box), which is why the
file never meets the "points with several boxes" ambiguity the flags can::

    prompts:
      - box: [10, 20, 200, 220]              # xyxy pixels of the source's frames
      - points: [[50, 60], [70, 80, 0]]      # [x, y] positive, [x, y, 0|1] labelled
        box: [40, 50, 120, 160]              # optional; points and box make one object
        class_name: forklift                 # default "foreground"
      - points: [{x: 300, y: 90, positive: false}, {x: 310, y: 120}]

On the command line every ``--box X0,Y0,X1,Y1`` is one object; every ``--point X,Y[:0|1]`` goes to
one more object, together with the box when exactly one ``--box`` is given (the rule of
``VisualPrompt``: points belong to one object, so they go with at most one box). A point without
``:0|1`` is positive: a click says "this is the object"; a negative point must be asked for.

Bounds that need no frame (finite, non-negative, non-zero area) are checked here, before any
work; whether a prompt fits the source's frames is known only once a frame is decoded (see
``pipeline.cli.run_pipeline``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError
from tracker.visual_prompts import VisualPrompt

# A coordinate in pixels: a finite number >= 0 (a negative one lies outside every frame).
Pixel = Annotated[float, Field(ge=0, allow_inf_nan=False)]


UNNAMED = "prompts"
"""The origin of a prompt no flag or file entry has named yet."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointConfig(_Strict):
    """One labelled click: ``[x, y]``, ``[x, y, 0|1]`` or ``{x, y, positive}`` (Roboflow's form)."""

    x: Pixel
    y: Pixel
    positive: bool = True

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        if len(value) not in (2, 3):
            raise ValueError(f"a point is [x, y] or [x, y, 0|1], got {list(value)!r}")
        point = {"x": value[0], "y": value[1]}
        if len(value) == 3:
            label = value[2]
            if isinstance(label, bool) or label not in (0, 1):
                raise ValueError(
                    f"the label of {list(value)!r} must be 1 (positive) or 0 (negative)"
                )
            point["positive"] = label == 1
        return point


class PromptConfig(_Strict):
    """One object to track from the first frame: a box, labelled points, or both.

    Attributes:
        box: ``[x0, y0, x1, y1]``, pixels of the source's frames (corners, not width/height).
        points: clicks on the object (positive) or beside it (negative).
        class_name: what the object is called in detections; when it is one of ``classes`` it
            gets that class id, else -1.

    Examples:
        >>> prompt = PromptConfig.model_validate({"box": [10, 20, 60, 80], "points": [[30, 40]]})
        >>> prompt.to_visual_prompt().labels
        (1,)
    """

    box: tuple[Pixel, Pixel, Pixel, Pixel] | None = None
    points: list[PointConfig] = Field(default_factory=list)
    class_name: str = Field(default="foreground", min_length=1)
    # What the user typed, for errors found later (``--box 10,20,60,80``, ``cam.yaml: prompts.0``).
    _origin: str = PrivateAttr(default=UNNAMED)

    @field_validator("box", mode="before")
    @classmethod
    def _four_numbers(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) != 4:
            raise ValueError(f"a box is [x0, y0, x1, y1] (corners, pixels), got {list(value)!r}")
        return value

    @field_validator("class_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _an_object(self) -> PromptConfig:
        if self.box is None and not self.points:
            raise ValueError("give a box, points, or both")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 <= x0 or y1 <= y0:
                raise ValueError(
                    f"box {_numbers(self.box)} has zero area (needs x0 < x1 and y0 < y1)"
                )
        return self

    @property
    def origin(self) -> str:
        """The flag or config field the prompt came from, for errors found at run time."""
        return self._origin

    def named(self, origin: str) -> PromptConfig:
        """This prompt, remembering ``origin`` for later errors; returns self."""
        self._origin = origin
        return self

    def to_visual_prompt(self) -> VisualPrompt:
        """The tracker's prompt: one new object."""
        return VisualPrompt(
            boxes=() if self.box is None else (self.box,),
            points=tuple((point.x, point.y) for point in self.points),
            labels=tuple(int(point.positive) for point in self.points),
            class_name=self.class_name,
        )


def prompts_from_flags(
    boxes: Sequence[str], points: Sequence[str], class_name: str | None = None
) -> list[PromptConfig]:
    """``--box`` / ``--point`` / ``--prompt-class`` values -> one ``PromptConfig`` per object.

    Each box is an object; the points are one more object, or join the box when there is
    exactly one. ``class_name`` (``--prompt-class``) names every one of them.

    Raises:
        ConfigError: one line naming the flag (and the value) at fault.

    Examples:
        >>> [p.to_visual_prompt().object_count for p in prompts_from_flags(["0,0,9,9"], ["4,4:0"])]
        [1]
    """
    if class_name is not None and not boxes and not points:
        raise ConfigError(
            "--prompt-class: names the objects of --box / --point; give one of them",
            field="prompts",
        )
    if points and len(boxes) > 1:
        raise ConfigError(
            f"--point: points belong to one object, but {len(boxes)} --box flags make "
            f"{len(boxes)} objects; give the points with at most one --box (several objects "
            "with points: a prompts: list in --config FILE)",
            field="prompts",
        )
    parsed_points = [_parse_point(text) for text in points]
    named = {} if class_name is None else {"class_name": class_name}
    entries: list[tuple[str, dict[str, Any]]] = []
    if points:
        origin = " ".join(f"--point {text}" for text in points)
        entry: dict[str, Any] = {"points": parsed_points, **named}
        if boxes:
            origin = f"--box {boxes[0]} {origin}"
            entry["box"] = _parse_box(boxes[0])
        entries.append((origin, entry))
    else:
        entries.extend((f"--box {text}", {"box": _parse_box(text), **named}) for text in boxes)
    return [_validated(origin, entry) for origin, entry in entries]


def _validated(origin: str, entry: dict[str, Any]) -> PromptConfig:
    """``entry`` as a ``PromptConfig``; a refusal names the flag (coordinates are checked)."""
    try:
        return PromptConfig.model_validate(entry).named(origin)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["loc"] and first["loc"][0] == "class_name":
            raise ConfigError(f"--prompt-class: {message}", field="prompts") from None
        raise ConfigError(f"{origin}: {message}", field="prompts") from None


def _parse_box(text: str) -> list[float]:
    """``"X0,Y0,X1,Y1"`` -> four numbers >= 0 (the area is the model's to check)."""
    values = _numbers_of(text)
    if values is None or len(values) != 4:
        raise ConfigError(
            f"--box {text!r} must be X0,Y0,X1,Y1: four numbers, the corners in pixels",
            field="prompts",
        )
    if min(values) < 0:
        raise ConfigError(f"--box {text!r}: pixels of the frame are >= 0", field="prompts")
    return values


def _parse_point(text: str) -> list[float]:
    """``"X,Y"`` or ``"X,Y:0|1"`` -> ``[x, y, label]`` (label 1 when omitted)."""
    coordinates, colon, label = text.partition(":")
    values = _numbers_of(coordinates)
    if values is None or len(values) != 2:
        raise ConfigError(
            f"--point {text!r} must be X,Y or X,Y:0|1 (pixels; :1 positive, the default)",
            field="prompts",
        )
    if min(values) < 0:
        raise ConfigError(f"--point {text!r}: pixels of the frame are >= 0", field="prompts")
    if colon and label.strip() not in ("0", "1"):
        raise ConfigError(
            f"--point {text!r}: the label after ':' must be 1 (positive) or 0 (negative)",
            field="prompts",
        )
    return [*values, int(label) if colon else 1]


def _numbers_of(text: str) -> list[float] | None:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        return None
    return values if all(math.isfinite(value) for value in values) else None


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{value:g}" for value in values) + "]"
