"""Everything around the model, in rooms: loop, sources, compat, config, cli, bench, service.

``InferencePipeline`` and ``StatusUpdate`` are imported on first use, so that ``import pipeline``
(which every CLI verb does) stays light until a pipeline is actually built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.video_frame import VideoFrame

if TYPE_CHECKING:
    from pipeline.loop.inference_pipeline import InferencePipeline
    from pipeline.loop.status_events import StatusUpdate

__all__ = ["InferencePipeline", "StatusUpdate", "VideoFrame"]


def __getattr__(name: str) -> Any:
    if name == "InferencePipeline":
        from pipeline.loop.inference_pipeline import InferencePipeline

        return InferencePipeline
    if name == "StatusUpdate":
        from pipeline.loop.status_events import StatusUpdate

        return StatusUpdate
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
