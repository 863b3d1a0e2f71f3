"""What ``InferencePipeline.status()`` returns, and the per-source figures the loop keeps for it.

``PipelineStatus`` is a frozen snapshot: the pipeline, then one ``SourceStatus`` per source (the
source's own ``SourceStats`` plus what the loop counted for it), then each sink's counters when
known. ``to_dict()`` is its JSON form, the one the HTTP API shows.

Latency is measured per frame in four stages (``LATENCY_STAGES``):

- ``decode``: the source decoding the frame (packet to BGR array);
- ``inference``: ``registry.process`` on the frame;
- ``sinks``: the ``on_prediction`` call (for ``multi_sink``, queueing to each sink's worker);
- ``end_to_end``: from the start of decoding to the return of ``on_prediction``: the age of the
  result when the sinks have it, waits in buffers included.

``LatencyWindow`` keeps the most recent samples only, so a camera that runs for weeks reports its
current latency, not its average since start, in constant memory.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import supervision as sv

from pipeline.sources import SourceStats
from sinks import SinkCounters

LATENCY_STAGES = ("decode", "inference", "sinks", "end_to_end")
LATENCY_WINDOW = 512
"""Samples per stage and source the percentiles are taken over (about 17 s of a 30 fps camera)."""
FPS_WINDOW = 30
"""Frames the processed-fps estimate is taken over."""


class PipelineState(enum.StrEnum):
    """Where a pipeline is in its life."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    ENDED = "ENDED"  # every source finished by itself (files)
    TERMINATED = "TERMINATED"  # stopped by terminate()


@dataclass(frozen=True)
class LatencySummary:
    """One stage's latency over the window, in seconds (None before any sample)."""

    p50: float | None
    p95: float | None
    max: float | None
    count: int
    """Samples ever taken, not only those in the window."""

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


class LatencyWindow:
    """The last ``size`` samples of one stage, in seconds; thread-safe.

    Examples:
        >>> window = LatencyWindow()
        >>> for ms in (10, 20, 30, 40):
        ...     window.add(ms / 1000)
        >>> window.summary().p50, window.summary().count
        (0.025, 4)
    """

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._count = 0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)
            self._count += 1

    def summary(self) -> LatencySummary:
        """p50, p95 and max over the window; ``count`` ever."""
        with self._lock:
            samples = np.fromiter(self._samples, dtype=np.float64)
            count = self._count
        if samples.size == 0:
            return LatencySummary(p50=None, p95=None, max=None, count=count)
        p50, p95 = np.percentile(samples, [50, 95])
        return LatencySummary(
            p50=round(float(p50), 6),
            p95=round(float(p95), 6),
            max=round(float(samples.max()), 6),
            count=count,
        )


@dataclass(frozen=True)
class SourceStatus:
    """One source in ``PipelineStatus``: its own counters, then what the loop counted for it.

    Attributes:
        stats: the source's snapshot (state, epoch, decode and drop counters, buffer...).
        total_frames: frames in the file when known; None for live sources.
        frames_processed: frames the model returned detections for.
        inference_errors: frames the model failed on.
        dispatch_dropped: live results dropped because the sinks fell behind.
        last_frame_id: the last frame the model processed.
        processed_fps: frames per second through the model lately (0 when stale).
        latency_s: per stage of ``LATENCY_STAGES``.
    """

    stats: SourceStats
    total_frames: int | None
    frames_processed: int
    inference_errors: int
    dispatch_dropped: int
    last_frame_id: int | None
    processed_fps: float
    latency_s: Mapping[str, LatencySummary]

    def to_dict(self) -> dict[str, Any]:
        """The source's ``SourceStats`` fields, then the loop's, in one flat JSON-ready dict."""
        return {
            **self.stats.to_dict(),
            "total_frames": self.total_frames,
            "frames_processed": self.frames_processed,
            "inference_errors": self.inference_errors,
            "dispatch_dropped": self.dispatch_dropped,
            "last_frame_id": self.last_frame_id,
            "processed_fps": self.processed_fps,
            "latency_s": {stage: summary.to_dict() for stage, summary in self.latency_s.items()},
        }


@dataclass(frozen=True)
class PipelineStatus:
    """A snapshot of a pipeline: its settings and state, each source, each sink.

    Attributes:
        state: where the pipeline is in its life.
        model: the model's name, credentials redacted.
        class_names / threshold / max_fps: the settings in force.
        started_at: wall clock (UTC) of ``start()``; None before.
        sink_errors: failures of ``on_prediction`` or of the sinks it fans out to.
        sources: one entry per source, in ``source_id`` order.
        sinks: counters per sink name (redacted) when ``on_prediction`` reports them (a list of
            sinks, a ``MultiSink``); None otherwise.
        exec_session_id: Roboflow's execution session id of the pipeline (given or minted).
    """

    state: PipelineState
    model: str
    class_names: tuple[str, ...]
    threshold: float
    max_fps: float | None
    started_at: datetime | None
    sink_errors: int
    sources: tuple[SourceStatus, ...]
    sinks: Mapping[str, SinkCounters] | None = None
    exec_session_id: str | None = None

    @property
    def frames_processed(self) -> int:
        return sum(source.frames_processed for source in self.sources)

    @property
    def inference_errors(self) -> int:
        return sum(source.inference_errors for source in self.sources)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: enums as names, the start time in ISO 8601, ``sinks`` only when known."""
        result: dict[str, Any] = {
            "state": self.state.value,
            "model": self.model,
            "class_names": list(self.class_names),
            "threshold": self.threshold,
            "max_fps": self.max_fps,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "frames_processed": self.frames_processed,
            "inference_errors": self.inference_errors,
            "sink_errors": self.sink_errors,
            "sources": [source.to_dict() for source in self.sources],
            "exec_session_id": self.exec_session_id,
        }
        if self.sinks is not None:
            result["sinks"] = {name: asdict(counters) for name, counters in self.sinks.items()}
        return result


@dataclass
class SourceMetrics:
    """What the inference loop counts for one source, beside the source's own ``SourceStats``."""

    frames_processed: int = 0
    inference_errors: int = 0
    dispatch_dropped: int = 0
    last_frame_id: int | None = None
    drops_reported: int = 0
    latency: dict[str, LatencyWindow] = field(
        default_factory=lambda: {stage: LatencyWindow() for stage in LATENCY_STAGES}
    )
    _rate: sv.FPSMonitor = field(default_factory=lambda: sv.FPSMonitor(FPS_WINDOW))

    def processed(self, frame_id: int, at: float) -> None:
        """Count a frame the model returned at ``at`` (``time.monotonic()``)."""
        self.frames_processed += 1
        self.last_frame_id = frame_id
        self._rate.all_timestamps.append(at)  # FPSMonitor.tick() with the loop's own clock

    def processed_fps(self, now: float, stale_after_s: float = 2.0) -> float:
        """Frames per second through the model lately; 0 when nothing came for a while.

        "A while" is ``stale_after_s`` or three frame intervals, whichever is longer, so a model
        that takes 4 s a frame reads 0.25 fps rather than flickering to 0 between frames.
        ``FPSMonitor`` gives the rate; it has no notion of a stream gone quiet, hence the rule.
        """
        fps = self._rate.fps
        if fps <= 0:
            return 0.0
        if now - self._rate.all_timestamps[-1] > max(stale_after_s, 3 / fps):
            return 0.0
        return round(fps, 3)

    def snapshot(self, stats: SourceStats, total_frames: int | None, now: float) -> SourceStatus:
        """This source's entry in ``status()``, beside the source's own ``stats``."""
        return SourceStatus(
            stats=stats,
            total_frames=total_frames,
            frames_processed=self.frames_processed,
            inference_errors=self.inference_errors,
            dispatch_dropped=self.dispatch_dropped,
            last_frame_id=self.last_frame_id,
            processed_fps=self.processed_fps(now),
            latency_s={stage: window.summary() for stage, window in self.latency.items()},
        )
