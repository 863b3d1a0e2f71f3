"""Frames and detections out: screen, annotated video, JSON lines, webhook, UDP, memory, multi_sink.

Every sink is called as ``sink(predictions, video_frame)``, where ``predictions`` is an
``sv.Detections`` or a workflow result dict holding one, and ``video_frame`` is a
``pipeline.VideoFrame`` read by attribute (this package never imports ``pipeline``). Every sink
object has ``close()``, a ``state`` and ``stats`` counters; ``multi_sink`` isolates sinks from each
other and from the inference loop.

Examples:
    >>> import sinks  # doctest: +SKIP
    >>> video = sinks.VideoFileSink.init("out.mp4")  # doctest: +SKIP
    >>> fan_out = sinks.multi_sink([sinks.render_boxes, video.on_prediction])  # doctest: +SKIP
    >>> fan_out.close()  # doctest: +SKIP
"""

from __future__ import annotations

from sinks.active_learning import active_learning_sink
from sinks.annotate import annotate
from sinks.base import ErrorCallback, Sink, SinkCounters, SinkState, SinkStats, close_sink
from sinks.errors import (
    DisplayUnavailableError,
    SinkConfigError,
    SinkError,
    SinkSpecError,
    SinkWriteError,
    WebhookDeliveryError,
)
from sinks.jsonl import JsonlSink
from sinks.memory import InMemoryBufferSink
from sinks.multi import MultiSink, multi_sink
from sinks.predictions import detections_from
from sinks.render import DEFAULT_FPS_MONITOR, ImageWithSourceID, render_frame, render_statistics
from sinks.screen import ScreenSink, display_image, render_boxes
from sinks.serialize import decode_mask, dumps, encode_mask, frame_record
from sinks.spec import SINK_SPEC_FORMS, parse_sink_spec
from sinks.udp import UDPSink
from sinks.video_file import VideoFileSink
from sinks.webhook import WebhookSink

__all__ = [
    "DEFAULT_FPS_MONITOR",
    "SINK_SPEC_FORMS",
    "DisplayUnavailableError",
    "ErrorCallback",
    "ImageWithSourceID",
    "InMemoryBufferSink",
    "JsonlSink",
    "MultiSink",
    "ScreenSink",
    "Sink",
    "SinkConfigError",
    "SinkCounters",
    "SinkError",
    "SinkSpecError",
    "SinkState",
    "SinkStats",
    "SinkWriteError",
    "UDPSink",
    "VideoFileSink",
    "WebhookDeliveryError",
    "WebhookSink",
    "active_learning_sink",
    "annotate",
    "close_sink",
    "decode_mask",
    "detections_from",
    "display_image",
    "dumps",
    "encode_mask",
    "frame_record",
    "multi_sink",
    "parse_sink_spec",
    "render_boxes",
    "render_frame",
    "render_statistics",
]
