"""Where one managed stream's frames go: metrics, the user's sinks, SSE clients and WebRTC viewers.

``StreamOutputs`` is the ``on_prediction`` the service hands to a pipeline. It counts and observes
the frame on the inference thread (two cheap calls) and queues it for everything else through
``sinks.multi_sink``, so no output, however slow, holds up the model: each sink has its own worker
and bounded queue. The SSE and WebRTC side is one sink, ``LiveTap``; its own buffers are bounded
too (see ``events`` and ``webrtc``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import supervision as sv

from pipeline.service.log_text import printable
from pipeline.service.metrics import ServiceMetrics
from pipeline.service.sse import EventHub
from pipeline.service.webrtc import WebRTCPublisher
from pipeline.video_frame import VideoFrame
from sinks import ErrorCallback, MultiSink, Sink, SinkCounters

logger = logging.getLogger(__name__)


class LiveTap(Sink):
    """The live clients of one stream as a sink: event subscribers and WebRTC viewers."""

    def __init__(self, stream_id: str, events: EventHub, webrtc: WebRTCPublisher) -> None:
        super().__init__(name=f"live:{stream_id}")
        self._events = events
        self._webrtc = webrtc

    def _write(self, detections: sv.Detections, frame: VideoFrame) -> None:
        self._events.publish_frame(detections, frame)
        self._webrtc.publish(detections, frame)


class StreamOutputs:
    """The ``on_prediction(detections, frame)`` of one stream (see the module docstring).

    Sink failures go to ``report_sink_error`` of the pipeline once ``attach`` named it, so they
    become the pipeline's ``SINK_ERROR`` status events like any other sink's; ``stats()`` is what
    the pipeline's ``status()`` reports under ``sinks``.

    Args:
        stream_id: the stream's id, for metrics labels and sink names.
        user_sinks: sinks from the stream's ``sinks`` field; closed by ``close``.
        events: the stream's SSE hub.
        webrtc: the stream's WebRTC viewers.
        metrics: the service metrics.
    """

    def __init__(
        self,
        stream_id: str,
        user_sinks: Sequence[Sink],
        *,
        events: EventHub,
        webrtc: WebRTCPublisher,
        metrics: ServiceMetrics,
    ) -> None:
        self.stream_id = stream_id
        self.name = f"stream:{stream_id}"
        self.frames_dispatched = 0
        self._metrics = metrics
        self._report_error: ErrorCallback | None = None
        self._fan_out = MultiSink(
            [*user_sinks, LiveTap(stream_id, events, webrtc)], on_error=self._sink_failed
        )

    def attach(self, report_sink_error: ErrorCallback) -> None:
        """Send sink failures to the pipeline (``InferencePipeline.report_sink_error``)."""
        self._report_error = report_sink_error

    def _sink_failed(self, name: str, error: BaseException) -> None:
        if self._report_error is not None:
            self._report_error(name, error)
        else:
            logger.warning(
                "stream %s: sink %s failed: %s", self.stream_id, printable(name), printable(error)
            )

    def __call__(self, predictions: sv.Detections, video_frame: VideoFrame) -> None:
        self.frames_dispatched += 1
        self._metrics.observe_frame(self.stream_id, video_frame)
        self._fan_out(predictions, video_frame)

    def stats(self) -> dict[str, SinkCounters]:
        """Counters per sink (``SinkCounters``), as ``InferencePipeline.status()`` reads them."""
        return self._fan_out.stats()

    def close(self, timeout: float = 10.0) -> None:
        """Let every sink finish what is queued (within ``timeout``), then close them."""
        self._fan_out.close(timeout)
