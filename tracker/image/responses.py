"""Response bodies of single-image concept segmentation, shaped as Roboflow's SAM3 responses.

Field names and nesting follow ``inference/core/entities/responses/sam3.py`` so that code reading
``response.prompt_results[i].echo.text`` or ``.predictions[j].masks`` runs unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Sam3SegmentationPrediction(BaseModel):
    """One instance found by a prompt.

    ``masks`` is, for ``polygon``, a list of polygons, each a list of ``[x, y]`` integer pixel
    points (a mask in several pieces has several); for ``rle``, COCO's compressed RLE
    ``{"size": [height, width], "counts": str}`` (column-major, as pycocotools writes it).
    """

    masks: list[list[list[int]]] | dict[str, Any]
    confidence: float
    format: str = "polygon"


class Sam3PromptEcho(BaseModel):
    """What the prompt was, so a client can match results to the prompts it sent."""

    prompt_index: int
    type: str | None = None
    text: str | None = None
    num_boxes: int | None = None


class Sam3PromptResult(BaseModel):
    """The instances one prompt found, best first."""

    prompt_index: int
    echo: Sam3PromptEcho
    predictions: list[Sam3SegmentationPrediction]


class Sam3SegmentationResponse(BaseModel):
    """Every prompt's result for one image, in prompt order; ``time`` in seconds."""

    prompt_results: list[Sam3PromptResult]
    time: float = Field(description="Seconds spent, image decoding and post-processing included")


class Sam3EmbeddingResponse(BaseModel):
    """The id an image's embedding is cached under, and the seconds it took."""

    image_id: str
    time: float
