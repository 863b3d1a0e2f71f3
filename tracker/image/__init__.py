"""Single-image SAM3: concept segmentation (text, exemplar boxes) and interactive point/box
segmentation, both served by the already-loaded video model's weights."""

from __future__ import annotations

from tracker.image.concept import SegmentAnything3
from tracker.image.embedding_cache import CachedEmbedding, EmbeddingCache
from tracker.image.image_input import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, load_rgb
from tracker.image.interactive import Sam3ForInteractiveImageSegmentation
from tracker.image.masks import MASK_FORMATS
from tracker.image.prompts import MAX_PROMPTS, Sam3Prompt, check_prompts
from tracker.image.responses import (
    Sam3EmbeddingResponse,
    Sam3PromptEcho,
    Sam3PromptResult,
    Sam3SegmentationPrediction,
    Sam3SegmentationResponse,
)

__all__ = [
    "MASK_FORMATS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_PROMPTS",
    "CachedEmbedding",
    "EmbeddingCache",
    "Sam3EmbeddingResponse",
    "Sam3ForInteractiveImageSegmentation",
    "Sam3Prompt",
    "Sam3PromptEcho",
    "Sam3PromptResult",
    "Sam3SegmentationPrediction",
    "Sam3SegmentationResponse",
    "SegmentAnything3",
    "check_prompts",
    "load_rgb",
]
