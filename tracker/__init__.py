"""The model side: load SAM3, streaming sessions, the registry, output -> supervision.Detections.

Knows nothing of sources or sinks.
"""

from __future__ import annotations

from tracker.errors import InferenceError, ModelLoadError, Sam3StreamError
from tracker.model import FrameResult, Sam3VideoTracker
from tracker.registry import SessionRegistry
from tracker.reseed import RESEED_TRIGGERS, ReseedReason
from tracker.stream_session import SessionStats
from tracker.tiny_model import build_tiny_model, is_tiny_model

__all__ = [
    "RESEED_TRIGGERS",
    "FrameResult",
    "InferenceError",
    "ModelLoadError",
    "ReseedReason",
    "Sam3StreamError",
    "Sam3VideoTracker",
    "SessionRegistry",
    "SessionStats",
    "build_tiny_model",
    "is_tiny_model",
]
