"""Frames in and the loop: sources, buffering, reconnect, InferencePipeline, CLI and service."""

from __future__ import annotations

from pipeline.video_frame import VideoFrame

__all__ = ["VideoFrame"]
