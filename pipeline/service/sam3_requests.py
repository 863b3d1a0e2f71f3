"""Request and response bodies of ``/sam3/*``, shaped as Roboflow's SAM3 / SAM2 HTTP entities.

Field names, defaults and nesting follow ``inference/core/entities/requests/sam3.py`` and
``sam2.py`` so that ``inference-sdk`` and hand-written clients send what they already send.
Unknown top-level fields are ignored (the SDK sends ``api_key`` in every body; Roboflow's
``BaseRequest`` carries ``id``, ``source``...). Where Roboflow quietly returns nothing, these refuse
with a 422 naming the field: an unknown ``format``, an empty point/box prompt, no prompts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.service.images import InferenceRequestImage
from tracker.image import MASK_FORMATS, MAX_PROMPTS, Sam3Prompt, Sam3SegmentationPrediction

DEFAULT_MODEL_ID = "sam3/sam3_final"
MAX_IMAGE_ID_CHARS = 256
MAX_VISUAL_PROMPTS = MAX_PROMPTS
MAX_POINTS = 64
"""Points per interactive prompt (the model side's ``MAX_POINTS``)."""

_REQUEST_CONFIG = ConfigDict(extra="ignore", protected_namespaces=())


def _check_format(value: str | None, default: str) -> str:
    chosen = default if value is None else value
    if chosen not in MASK_FORMATS:
        raise ValueError(f"format must be one of {', '.join(MASK_FORMATS)}")
    return chosen


class Sam3SegmentationRequest(BaseModel):
    """``POST /sam3/concept_segment``: every instance of each prompt's concept on one image."""

    model_config = _REQUEST_CONFIG

    image: InferenceRequestImage
    image_id: str | None = Field(default=None, max_length=MAX_IMAGE_ID_CHARS)
    model_id: str | None = DEFAULT_MODEL_ID
    prompts: list[Sam3Prompt] = Field(min_length=1, max_length=MAX_PROMPTS)
    format: str | None = Field(default="polygon", description="polygon, rle or json (= polygon)")
    output_prob_thresh: float | None = Field(default=0.5, ge=0.0, le=1.0)
    nms_iou_threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("prompts", mode="before")
    @classmethod
    def _type_null_is_unset(cls, prompts: Any) -> Any:
        """Roboflow's models serialise ``"type": null``; it means "derive it" here too."""
        if isinstance(prompts, list):
            return [
                {k: v for k, v in p.items() if not (k == "type" and v is None)}
                if isinstance(p, dict)
                else p
                for p in prompts
            ]
        return prompts

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str:
        return _check_format(value, "polygon")


class Sam3EmbeddingRequest(BaseModel):
    """``POST /sam3/embed_image``: run the vision pass once and cache it under ``image_id``."""

    model_config = _REQUEST_CONFIG

    image: InferenceRequestImage
    image_id: str | None = Field(default=None, min_length=1, max_length=MAX_IMAGE_ID_CHARS)


class Sam2Point(BaseModel):
    """A click in pixels; ``positive`` false marks background."""

    model_config = ConfigDict(extra="forbid")
    x: float
    y: float
    positive: bool = True


class Sam2Box(BaseModel):
    """A box in pixels, **centre-anchored**: (x, y) is its centre (Roboflow's SAM2 convention)."""

    model_config = ConfigDict(extra="forbid")
    x: float
    y: float
    width: float
    height: float


class Sam2Prompt(BaseModel):
    """One object to segment: positive/negative points, a centre-anchored box, or both."""

    model_config = ConfigDict(extra="forbid")
    box: Sam2Box | None = None
    points: list[Sam2Point] | None = Field(default=None, max_length=MAX_POINTS)

    @model_validator(mode="after")
    def _something_to_segment(self) -> Sam2Prompt:
        if self.box is None and not self.points:
            raise ValueError("a prompt needs points and/or a box")
        return self


class Sam3VisualSegmentationRequest(BaseModel):
    """``POST /sam3/visual_segment``: one mask per point/box prompt (Roboflow's SAM2 request).

    ``prompts`` may be a list of prompts, ``{"prompts": [...]}`` (what ``inference-sdk`` sends)
    or one prompt. ``image`` may be left out when ``image_id`` names a cached embedding.
    """

    model_config = _REQUEST_CONFIG

    image: InferenceRequestImage | None = None
    image_id: str | None = Field(default=None, min_length=1, max_length=MAX_IMAGE_ID_CHARS)
    prompts: list[Sam2Prompt] = Field(min_length=1, max_length=MAX_VISUAL_PROMPTS)
    multimask_output: bool = True
    format: str | None = Field(default="json", description="json (= polygon), polygon or rle")
    save_logits_to_cache: bool = False
    load_logits_from_cache: bool = False

    @field_validator("prompts", mode="before")
    @classmethod
    def _one_list(cls, prompts: Any) -> Any:
        """``{"prompts": [...]}`` and a single prompt become a list; null stays (and fails)."""
        if isinstance(prompts, dict):
            return prompts.get("prompts", [prompts])
        return prompts

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str:
        return _check_format(value, "json")


class Sam3VisualSegmentationResponse(BaseModel):
    """One prediction per prompt, in prompt order: the best-scoring mask of its proposals."""

    predictions: list[Sam3SegmentationPrediction]
    time: float = Field(description="Seconds spent, image decoding included")
