"""Everything around the model, in rooms: loop, sources, compat, config, cli, bench, service.

The names Roboflow code imports from ``inference`` (``InferencePipeline``, ``SinkMode``,
``StatusUpdate``, ``UpdateSeverity``, ``StreamState``) are imported on first use, so that
``import pipeline`` (which every CLI verb does) stays light until a pipeline is actually built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.video_frame import VideoFrame

if TYPE_CHECKING:
    from pipeline.loop.inference_pipeline import InferencePipeline
    from pipeline.loop.options import SinkMode
    from pipeline.loop.status_events import StatusUpdate, UpdateSeverity
    from pipeline.sources.base import StreamState

__all__ = [
    "InferencePipeline",
    "SinkMode",
    "StatusUpdate",
    "StreamState",
    "UpdateSeverity",
    "VideoFrame",
]

_LAZY = {
    "InferencePipeline": "pipeline.loop.inference_pipeline",
    "SinkMode": "pipeline.loop.options",
    "StatusUpdate": "pipeline.loop.status_events",
    "UpdateSeverity": "pipeline.loop.status_events",
    "StreamState": "pipeline.sources.base",
}
"""Exported name -> the module it lives in (imported when the name is first asked for)."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
