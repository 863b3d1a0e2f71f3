"""Concept prompts for single-image segmentation: text, exemplar boxes, or both.

Shaped as Roboflow's ``Sam3Prompt`` so code written against ``inference`` builds the same objects
here. Boxes are absolute pixels: ``Box`` is top-left anchored XYWH, ``BoxXYXY`` two corners.
Every rule a prompt must follow on its own is checked by pydantic when it is built (its
``ValidationError`` is a ``ValueError`` naming the field); the rules that need the image (a box
inside it) are checked by ``check_prompts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_PROMPTS = 16
"""The most prompts one request may carry (Roboflow's ``SAM3_MAX_PROMPT_BATCH_SIZE`` default).

All prompts of a request run as one batch through the detector's prompt-dependent layers, so
the cap bounds that batch's memory (prompts x queries x mask size).
"""

MAX_BOXES_PER_PROMPT = 64
"""The most exemplar boxes one prompt may carry: each is a token the geometry encoder attends to."""

VISUAL_PROMPT_TEXT = "visual"
"""The text the port gives a prompt made of exemplar boxes alone (``Sam3Processor``'s default)."""


class Sam3Prompt(BaseModel):
    """One concept to find on an image: a noun phrase, exemplar boxes, or a phrase narrowed by them.

    Examples:
        >>> from tracker import Sam3Prompt
        >>> Sam3Prompt(type="text", text="cat").text
        'cat'
        >>> p = Sam3Prompt(type="visual", boxes=[Sam3Prompt.Box(x=1, y=2, width=3, height=4)],
        ...                box_labels=[1])
        >>> p.boxes_xyxy()
        [(1.0, 2.0, 4.0, 6.0)]
    """

    model_config = ConfigDict(extra="forbid")

    class Box(BaseModel):
        """An exemplar box in pixels, anchored at its top-left corner."""

        model_config = ConfigDict(extra="forbid")
        x: float
        y: float
        width: float
        height: float

    class BoxXYXY(BaseModel):
        """An exemplar box in pixels, by its top-left and bottom-right corners."""

        model_config = ConfigDict(extra="forbid")
        x0: float
        y0: float
        x1: float
        y1: float

    type: Literal["text", "visual"] | None = "text"  # None (Roboflow's default): as "text"
    text: str | None = None
    boxes: list[Box | BoxXYXY] | None = Field(default=None, max_length=MAX_BOXES_PER_PROMPT)
    box_labels: list[bool | int] | None = None
    output_prob_thresh: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> Sam3Prompt:
        if self.boxes is not None and self.box_labels is None:
            raise ValueError(
                "box_labels is required with boxes (1/true positive, 0/false negative)"
            )
        if self.box_labels is not None and len(self.box_labels) != len(self.boxes or []):
            raise ValueError(
                f"box_labels has {len(self.box_labels)} entries but boxes has "
                f"{len(self.boxes or [])}: give one label per box"
            )
        for index, label in enumerate(self.box_labels or []):
            if int(label) not in (0, 1):
                raise ValueError(f"box_labels[{index}] must be 0/false or 1/true, got {label!r}")
        if self.type == "visual" and not self.boxes:
            raise ValueError("boxes: a visual prompt needs at least one exemplar box")
        if self.type != "visual" and not (self.text and self.text.strip()) and not self.boxes:
            raise ValueError("text: a text prompt needs a non-empty text (or exemplar boxes)")
        return self

    def boxes_xyxy(self) -> list[tuple[float, float, float, float]]:
        """Every exemplar box as (x0, y0, x1, y1) pixels."""
        corners = []
        for box in self.boxes or []:
            if isinstance(box, Sam3Prompt.Box):
                corners.append((box.x, box.y, box.x + box.width, box.y + box.height))
            else:
                corners.append((box.x0, box.y0, box.x1, box.y1))
        return corners

    def labels(self) -> list[int]:
        """1 for each positive exemplar, 0 for each negative one."""
        return [int(label) for label in self.box_labels or []]

    def model_text(self) -> str:
        """What the text encoder reads: the text, or the port's placeholder for boxes alone."""
        text = (self.text or "").strip()
        return text or VISUAL_PROMPT_TEXT


def check_prompts(
    prompts: Sequence[Sam3Prompt | dict], width: int, height: int
) -> list[Sam3Prompt]:
    """Validate a request's prompts against each other and the image they will run on.

    Dicts are parsed into ``Sam3Prompt``. A box must have positive width and height and lie
    inside the image (its corners within [0, width] x [0, height]): a box outside it points at
    nothing, and the port would clamp it silently into a different exemplar.

    Raises:
        ValueError: naming the field (``prompts``, ``prompts[i].boxes[j]``...) and the rule.
    """
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise ValueError(f"prompts must be a list of Sam3Prompt, got {type(prompts).__name__}")
    if len(prompts) == 0:
        raise ValueError("prompts: at least one prompt is required")
    if len(prompts) > MAX_PROMPTS:
        raise ValueError(f"prompts: at most {MAX_PROMPTS} prompts per request, got {len(prompts)}")
    parsed: list[Sam3Prompt] = []
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, dict):
            try:
                prompt = Sam3Prompt.model_validate(prompt)
            except ValueError as error:
                raise ValueError(f"prompts[{index}]: {error}") from None
        if not isinstance(prompt, Sam3Prompt):
            raise ValueError(f"prompts[{index}] must be a Sam3Prompt, got {type(prompt).__name__}")
        for box_index, (x0, y0, x1, y1) in enumerate(prompt.boxes_xyxy()):
            field = f"prompts[{index}].boxes[{box_index}]"
            if not (x1 > x0 and y1 > y0):
                raise ValueError(f"{field} has zero or negative area: ({x0}, {y0}, {x1}, {y1})")
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise ValueError(
                    f"{field} ({x0}, {y0}, {x1}, {y1}) lies outside the {width}x{height} image"
                )
        parsed.append(prompt)
    return parsed
