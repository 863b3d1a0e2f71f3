"""``GET /metrics``: Prometheus text for every stream, the model's sessions and the live clients.

Counters and gauges are read at scrape time from what already counts them (each pipeline's
``status()``; the registry's ``SessionStats``: bytes held, tracks live and tentative, evictions by
reason; the event hubs), so nothing is counted twice and a deleted stream simply disappears from
the next scrape. The one thing observed per frame is the frame-age histogram: wall clock at
dispatch minus the frame's grab time, for live sources (a file's timestamps are PTS-derived, not a
grab time). Each app has its own ``CollectorRegistry``, so several apps in one process (tests) do
not collide.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.loop.status import SourceStatus
from pipeline.video_frame import VideoFrame

logger = logging.getLogger(__name__)

PREFIX = "sam3_stream"
FRAME_AGE_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
"""Seconds from grab to dispatch: a live camera should sit in the first few buckets."""

_SOURCE_COUNTERS: dict[str, tuple[str, Callable[[SourceStatus], int]]] = {
    # metric name: (help, what it sums over the stream's sources)
    "frames_decoded": (
        "Frames decoded by the stream's sources.",
        lambda source: source.stats.frames_decoded,
    ),
    "frames_processed": ("Frames run through the model.", lambda source: source.frames_processed),
    "frames_dropped": (
        "Frames dropped: stale live frames, pauses, max_fps, results the sinks fell behind on.",
        lambda source: source.stats.frames_dropped + source.dispatch_dropped,
    ),
    "reconnects": (
        "Successful reconnects of the stream's sources.",
        lambda source: source.stats.reconnects,
    ),
    "inference_errors": ("Frames the model failed on.", lambda source: source.inference_errors),
}


@dataclass(frozen=True)
class SessionSnapshot:
    """What the metrics read of a stream's tracker session (its ``SessionStats``).

    Attributes:
        objects_live: tracks the session holds now (never above the stream's budget).
        tentative_tracks: tracks not confirmed by the detector yet (no ``tracker_id``).
        prompted_objects: box/point-prompted objects live or waiting for their frame (also in
            ``objects_live``).
        evictions: tracks removed since the session opened, by reason (``lost``,
            ``unmatched``, ``duplicate``, ``budget``); a new session starts again from 0, which
            Prometheus' ``rate()`` reads as a counter reset.
    """

    objects_live: int
    tentative_tracks: int
    evictions: Mapping[str, int] = field(default_factory=dict)
    prompted_objects: int = 0


@dataclass(frozen=True)
class StreamSnapshot:
    """What the metrics read about one stream at scrape time.

    Attributes:
        sources: the ``sources`` of the pipeline's ``status()``.
        sse_clients / sse_dropped: connected event clients and the events dropped for them.
        webrtc_viewers: open peer connections.
        session: the stream's tracker session; None before its first frame.
    """

    stream_id: str
    sources: Sequence[SourceStatus]
    sse_clients: int = 0
    sse_dropped: int = 0
    webrtc_viewers: int = 0
    session: SessionSnapshot | None = None


def latency_quantiles(source: SourceStatus) -> Iterator[tuple[str, str, float]]:
    """``(stage, quantile, seconds)`` for each stage's p50 and p95 that has a finite value."""
    for stage, summary in source.latency_s.items():
        for quantile, seconds in (("0.5", summary.p50), ("0.95", summary.p95)):
            if seconds is not None and math.isfinite(seconds):
                yield stage, quantile, seconds


class _ObjectFamilies:
    """Per stream: tracks live, prompted objects, tentative tracks, and evictions by reason."""

    def __init__(self) -> None:
        self.live = GaugeMetricFamily(
            f"{PREFIX}_objects_live",
            "Tracks the stream's tracker session holds (at most its max_objects).",
            labels=["stream"],
        )
        self.prompted = GaugeMetricFamily(
            f"{PREFIX}_prompted_objects",
            "Box/point-prompted objects of the stream (live or waiting for their frame).",
            labels=["stream"],
        )
        self.tentative = GaugeMetricFamily(
            f"{PREFIX}_tentative_tracks",
            "Tracks not confirmed by the detector yet: no tracker_id, not sent to sinks.",
            labels=["stream"],
        )
        self.evicted = CounterMetricFamily(
            f"{PREFIX}_objects_evicted",
            "Tracks removed by the tracker's rules, by reason "
            "(lost, unmatched, duplicate, budget).",
            labels=["stream", "reason"],
        )

    def add(self, stream: str, session: SessionSnapshot) -> None:
        self.live.add_metric([stream], session.objects_live)
        self.prompted.add_metric([stream], session.prompted_objects)
        self.tentative.add_metric([stream], session.tentative_tracks)
        for reason, count in sorted(session.evictions.items()):
            self.evicted.add_metric([stream, reason], count)

    def families(self) -> tuple[Metric, ...]:
        return (self.live, self.prompted, self.tentative, self.evicted)


class _ServiceCollector(Collector):
    def __init__(
        self,
        snapshots: Callable[[], Iterable[StreamSnapshot]],
        sessions: Callable[[], tuple[int, dict[str, int]]],
    ) -> None:
        self._snapshots = snapshots
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        snapshots = list(self._snapshots())
        counters = {
            name: CounterMetricFamily(f"{PREFIX}_{name}", help_text, labels=["stream"])
            for name, (help_text, _) in _SOURCE_COUNTERS.items()
        }
        epoch = GaugeMetricFamily(
            f"{PREFIX}_epoch",
            "Current epoch of the stream (reconnects and restarts).",
            labels=["stream"],
        )
        state = GaugeMetricFamily(
            f"{PREFIX}_source_state",
            "1 for the state each source is in.",
            labels=["stream", "state"],
        )
        latency = GaugeMetricFamily(
            f"{PREFIX}_latency_seconds",
            "Latency percentiles per stage, as the pipeline measures them.",
            labels=["stream", "stage", "quantile"],
        )
        sse_clients = GaugeMetricFamily(
            f"{PREFIX}_sse_clients", "Connected Server-Sent Events clients.", labels=["stream"]
        )
        sse_dropped = CounterMetricFamily(
            f"{PREFIX}_sse_events_dropped",
            "Events dropped for slow SSE clients still connected.",
            labels=["stream"],
        )
        viewers = GaugeMetricFamily(
            f"{PREFIX}_webrtc_viewers", "Open WebRTC peer connections.", labels=["stream"]
        )
        objects = _ObjectFamilies()
        for snapshot in snapshots:
            stream = snapshot.stream_id
            totals = dict.fromkeys(_SOURCE_COUNTERS, 0.0)
            epochs = []
            for source in snapshot.sources:
                for name, (_, count) in _SOURCE_COUNTERS.items():
                    totals[name] += count(source)
                epochs.append(float(source.stats.epoch))
                state.add_metric([stream, source.stats.state.value], 1.0)
                for stage, quantile, seconds in latency_quantiles(source):
                    latency.add_metric([stream, stage, quantile], seconds)
            for name, value in totals.items():
                counters[name].add_metric([stream], value)
            epoch.add_metric([stream], max(epochs, default=0.0))
            sse_clients.add_metric([stream], snapshot.sse_clients)
            sse_dropped.add_metric([stream], snapshot.sse_dropped)
            viewers.add_metric([stream], snapshot.webrtc_viewers)
            if snapshot.session is not None:
                objects.add(stream, snapshot.session)
        streams = GaugeMetricFamily(f"{PREFIX}_streams", "Streams managed by the server.")
        streams.add_metric([], len(snapshots))
        yield streams
        yield from counters.values()
        yield from (epoch, state, latency, sse_clients, sse_dropped, viewers)
        yield from objects.families()
        yield from self._session_metrics()

    def _session_metrics(self) -> Iterator[Metric]:
        live, held = self._sessions()
        sessions = GaugeMetricFamily(f"{PREFIX}_sessions_live", "Open tracker sessions.")
        sessions.add_metric([], live)
        session_bytes = GaugeMetricFamily(
            f"{PREFIX}_session_bytes_held",
            "Approximate bytes of tensors held per tracker session.",
            labels=["video_identifier"],
        )
        for video_identifier, value in sorted(held.items()):
            session_bytes.add_metric([video_identifier], value)
        total = GaugeMetricFamily(
            f"{PREFIX}_session_bytes_held_total", "Approximate bytes held by all sessions."
        )
        total.add_metric([], sum(held.values()))
        yield from (sessions, session_bytes, total)


class ServiceMetrics:
    """The service's Prometheus registry; ``observe_frame`` is the only per-frame call.

    Examples:
        >>> metrics = ServiceMetrics()
        >>> metrics.bind(lambda: [], lambda: (0, {}))
        >>> b"sam3_stream_streams 0.0" in metrics.render()
        True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.frame_age = Histogram(
            f"{PREFIX}_frame_age_seconds",
            "Seconds from grab to dispatch of live frames (end-to-end latency).",
            labelnames=["stream"],
            buckets=FRAME_AGE_BUCKETS,
            registry=self.registry,
        )

    def bind(
        self,
        snapshots: Callable[[], Iterable[StreamSnapshot]],
        sessions: Callable[[], tuple[int, dict[str, int]]],
    ) -> None:
        """Read streams from ``snapshots()`` and session figures from ``sessions()``."""
        self.registry.register(_ServiceCollector(snapshots, sessions))

    def observe_frame(self, stream_id: str, frame: VideoFrame) -> None:
        """Observe a live frame's age (a file's timestamps are not grab times)."""
        if frame.comes_from_video_file:
            return
        timestamp = frame.frame_timestamp
        now = datetime.now(UTC) if timestamp.tzinfo is not None else datetime.now()
        age = (now - timestamp).total_seconds()
        self.frame_age.labels(stream=stream_id).observe(max(0.0, age))

    def forget(self, stream_id: str) -> None:
        """Drop a deleted stream's histogram series."""
        with contextlib.suppress(KeyError):
            self.frame_age.remove(stream_id)

    def render(self) -> bytes:
        return generate_latest(self.registry)
