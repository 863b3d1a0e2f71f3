"""What a running pipeline tells the outside: status events, and latency statistics per stage.

``StatusUpdate`` has the fields of Roboflow's ``inference`` status update (``timestamp``,
``severity``, ``event_type``, ``payload``, ``context``) so existing ``status_update_handlers``
read it unchanged. Event types are the strings of ``EventType``; payloads are JSON-ready dicts
with credentials already redacted.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

LATENCY_STAGES = ("decode", "inference", "sinks", "end_to_end")
LATENCY_WINDOW = 512
"""Samples per stage and source the percentiles are taken over (about 17 s of a 30 fps camera)."""


class UpdateSeverity(enum.StrEnum):
    """How much a status event matters; a ``str`` so it serialises as its name."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class EventType(enum.StrEnum):
    """Every ``event_type`` a pipeline emits."""

    PIPELINE_STARTED = "PIPELINE_STARTED"
    PIPELINE_ENDED = "PIPELINE_ENDED"  # every source finished by itself
    PIPELINE_TERMINATED = "PIPELINE_TERMINATED"  # stopped by terminate()
    SOURCE_STATE_CHANGED = "SOURCE_STATE_CHANGED"
    FRAMES_DROPPED = "FRAMES_DROPPED"
    INFERENCE_ERROR = "INFERENCE_ERROR"
    SINK_ERROR = "SINK_ERROR"
    SETTINGS_CHANGED = "SETTINGS_CHANGED"  # class names or threshold changed at runtime


@dataclass(frozen=True)
class StatusUpdate:
    """One status event, handed to every ``status_update_handlers`` entry.

    Attributes:
        timestamp: wall clock (UTC) of the event.
        severity: DEBUG (drops), INFO (state changes), WARNING (reconnecting), ERROR (failures).
        event_type: one of ``EventType``.
        payload: JSON-ready details, e.g. ``{"source_id": 0, "new": "RECONNECTING", ...}``.
        context: where it happened: ``"inference_pipeline"``, ``"source/0"``, ``"sink/<name>"``.
    """

    timestamp: datetime
    severity: UpdateSeverity
    event_type: str
    payload: dict[str, Any]
    context: str

    @classmethod
    def now(
        cls, severity: UpdateSeverity, event_type: str, payload: dict[str, Any], context: str
    ) -> StatusUpdate:
        return cls(datetime.now(UTC), severity, event_type, payload, context)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO timestamp, severity as its name."""
        return {
            "timestamp": self.timestamp.isoformat(),
            "severity": self.severity.value,
            "event_type": str(self.event_type),
            "payload": self.payload,
            "context": self.context,
        }


StatusUpdateHandler = Callable[[StatusUpdate], None]


class LatencyWindow:
    """The last ``size`` samples of one stage, in seconds; thread-safe.

    Examples:
        >>> window = LatencyWindow()
        >>> for ms in (10, 20, 30, 40):
        ...     window.add(ms / 1000)
        >>> window.summary()["p50"], window.summary()["count"]
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

    def summary(self) -> dict[str, float | int | None]:
        """``{"p50", "p95", "max"}`` over the window (None before any sample), ``count`` ever."""
        with self._lock:
            samples = np.fromiter(self._samples, dtype=np.float64)
            count = self._count
        if samples.size == 0:
            return {"p50": None, "p95": None, "max": None, "count": count}
        p50, p95 = np.percentile(samples, [50, 95])
        return {
            "p50": round(float(p50), 6),
            "p95": round(float(p95), 6),
            "max": round(float(samples.max()), 6),
            "count": count,
        }


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
    _processed_at: deque[float] = field(default_factory=lambda: deque(maxlen=30))

    def processed(self, frame_id: int, at: float) -> None:
        self.frames_processed += 1
        self.last_frame_id = frame_id
        self._processed_at.append(at)

    def processed_fps(self, now: float, stale_after_s: float = 2.0) -> float:
        """Frames per second through the model lately; 0 when nothing came for a while.

        "A while" is ``stale_after_s`` or three frame intervals, whichever is longer, so a model
        that takes 4 s a frame reads 0.25 fps rather than flickering to 0 between frames.
        """
        times = self._processed_at
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        if span <= 0:
            return 0.0
        interval = span / (len(times) - 1)
        if now - times[-1] > max(stale_after_s, 3 * interval):
            return 0.0
        return round(1 / interval, 3)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "frames_processed": self.frames_processed,
            "inference_errors": self.inference_errors,
            "dispatch_dropped": self.dispatch_dropped,
            "last_frame_id": self.last_frame_id,
            "processed_fps": self.processed_fps(now),
            "latency_s": {stage: window.summary() for stage, window in self.latency.items()},
        }
