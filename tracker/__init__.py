"""The model side: load SAM3, streaming sessions, the registry, output -> supervision.Detections,
and single-image concept / interactive segmentation on the same weights (``tracker.image``).

Knows nothing of sources or sinks.
"""

from __future__ import annotations

from tracker.errors import InferenceError, ModelLoadError, Sam3StreamError
from tracker.image import Sam3ForInteractiveImageSegmentation, Sam3Prompt, SegmentAnything3
from tracker.model import FrameResult, Sam3VideoTracker
from tracker.registry import SessionRegistry
from tracker.reseed import RESEED_TRIGGERS, ReseedReason
from tracker.stream_session import SessionStats
from tracker.tiny_model import build_tiny_model, is_tiny_model
from tracker.visual_prompts import VisualPrompt

__all__ = [
    "RESEED_TRIGGERS",
    "FrameResult",
    "InferenceError",
    "ModelLoadError",
    "ReseedReason",
    "Sam3ForInteractiveImageSegmentation",
    "Sam3Prompt",
    "Sam3StreamError",
    "Sam3VideoTracker",
    "SegmentAnything3",
    "SessionRegistry",
    "SessionStats",
    "VisualPrompt",
    "build_tiny_model",
    "is_tiny_model",
]
