"""Video sources: files, network streams, webcams and a test pattern, behind one interface.

``make_source(reference)`` picks the kind; every kind is a ``VideoSource`` with ``start()``,
``read(timeout)``, ``frame_timing(frame_id)``, ``pause()`` / ``mute()`` / ``resume()``, ``stop()``,
a ``state`` and ``stats()``.
"""

from __future__ import annotations

from pipeline.sources.base import (
    FrameTiming,
    SourceState,
    SourceStateChange,
    SourceStats,
    VideoSource,
)
from pipeline.sources.file import FileSource
from pipeline.sources.live import LIVE_SCHEMES, LiveStreamSource
from pipeline.sources.reference import VideoReference, describe, make_source, make_sources
from pipeline.sources.round_robin import RoundRobinReader
from pipeline.sources.source_options import SourceOptions
from pipeline.sources.testpattern import TestPatternSource, draw_test_pattern
from pipeline.sources.webcam import WebcamSource

__all__ = [
    "LIVE_SCHEMES",
    "FileSource",
    "FrameTiming",
    "LiveStreamSource",
    "RoundRobinReader",
    "SourceOptions",
    "SourceState",
    "SourceStateChange",
    "SourceStats",
    "TestPatternSource",
    "VideoReference",
    "VideoSource",
    "WebcamSource",
    "describe",
    "draw_test_pattern",
    "make_source",
    "make_sources",
]
