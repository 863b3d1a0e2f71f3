"""What every sink shares: a readable lifecycle, counters the pipeline reports, error listeners."""

from __future__ import annotations

import enum
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import supervision as sv

from sinks.predictions import detections_from, iter_frames

logger = logging.getLogger(__name__)

ErrorCallback = Callable[[str, BaseException], None]
"""``on_error(sink_name, exception)``: how the pipeline turns sink failures into status events."""


@dataclass(frozen=True)
class SinkCounters:
    """A snapshot of one sink's counters; plain numbers so status and metrics can copy them.

    Attributes:
        frames_written: frames fully handled (encoded, written, delivered, sent or shown).
        errors: failures (exceptions raised by the sink, deliveries given up, send errors).
        dropped: frames never handled (queue overflow on live sources, failed deliveries,
            frames that arrived after close or after the sink failed).
        retries: delivery attempts repeated after a failure (webhook).
        truncated: payloads cut down to the objects that fit (UDP).
    """

    frames_written: int = 0
    errors: int = 0
    dropped: int = 0
    retries: int = 0
    truncated: int = 0

    def __add__(self, other: SinkCounters) -> SinkCounters:
        return SinkCounters(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


class SinkStats:
    """Live, thread-safe counters of one sink; readers can wait for a condition on them.

    The waiting lets tests and the pipeline await "the webhook retried twice" or "the worker has
    written 60 frames" as an event instead of sleeping and hoping.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._counters = SinkCounters()

    def add(self, **deltas: int) -> None:
        """Add to counters by name, e.g. ``stats.add(dropped=1)``."""
        with self._changed:
            current = self._counters
            self._counters = replace(
                current, **{name: getattr(current, name) + delta for name, delta in deltas.items()}
            )
            self._changed.notify_all()

    def snapshot(self) -> SinkCounters:
        with self._changed:
            return self._counters

    def wait_for(
        self, predicate: Callable[[SinkCounters], bool], timeout: float | None = None
    ) -> bool:
        """Block until ``predicate(counters)`` holds; return False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._counters), timeout)

    @property
    def frames_written(self) -> int:
        return self.snapshot().frames_written

    @property
    def errors(self) -> int:
        return self.snapshot().errors

    @property
    def dropped(self) -> int:
        return self.snapshot().dropped

    def __repr__(self) -> str:
        return f"SinkStats({self.snapshot()})"


class SinkState(enum.Enum):
    """Where a sink is in its life: taking frames, failed for good, or closed."""

    OPEN = "open"
    FAILED = "failed"
    CLOSED = "closed"


class Sink(ABC):
    """Base of every sink object: ``sink(predictions, video_frame)`` plus a lifecycle.

    Subclasses implement ``_write`` for one frame and ``_close`` to finalise. Exceptions raised by
    ``_write`` propagate to the caller (who counts them: ``multi_sink`` does); failures a sink
    absorbs itself (a webhook batch given up, a UDP send error) go through ``_report_error`` so
    that the listeners, and through them the pipeline's status events, hear about them.

    Attributes:
        name: how status and logs refer to this sink, e.g. ``"jsonl:out.jsonl"``.
        stats: the sink's live counters.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = SinkStats()
        self._state = SinkState.OPEN
        self._error_listeners: list[ErrorCallback] = []
        # Re-entrant: a signal handler may call close() on a thread that is already closing.
        self._close_lock = threading.RLock()

    @property
    def state(self) -> SinkState:
        return self._state

    def add_error_listener(self, listener: ErrorCallback) -> None:
        """Call ``listener(self.name, error)`` for every failure the sink absorbs itself."""
        self._error_listeners.append(listener)

    def on_prediction(self, predictions: Any, video_frame: Any) -> None:
        """Handle one frame (or a multi-source batch): the ``on_prediction`` callback itself.

        Args:
            predictions: ``sv.Detections`` or a workflow result dict (see ``detections_from``).
            video_frame: a ``pipeline.VideoFrame`` (read duck-typed), or a list of them.
        """
        for frame_predictions, frame in iter_frames(predictions, video_frame):
            if self._state is not SinkState.OPEN:
                self.stats.add(dropped=1)
                continue
            self._write(detections_from(frame_predictions), frame)

    def __call__(self, predictions: Any, video_frame: Any) -> None:
        self.on_prediction(predictions, video_frame)

    def close(self) -> None:
        """Finalise the sink (flush, close files, stop workers); later frames are dropped.

        Idempotent and safe from several threads, so the pipeline, a signal handler and ``atexit``
        may all call it: one of them finalises, the others wait until it is done.
        """
        with self._close_lock:
            if self._state is SinkState.CLOSED:
                return
            self._state = SinkState.CLOSED
            self._close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, state={self._state.value})"

    @abstractmethod
    def _write(self, detections: sv.Detections, frame: Any) -> None:
        """Handle one frame's detections."""

    def _close(self) -> None:  # noqa: B027 - optional hook, most sinks hold something
        """Release what the sink holds; called once, by ``close``."""

    def _fail(self) -> None:
        """Stop taking frames for good (e.g. no display); later frames count as dropped."""
        if self._state is SinkState.OPEN:
            self._state = SinkState.FAILED

    def _report_error(self, error: BaseException) -> None:
        self.stats.add(errors=1)
        for listener in self._error_listeners:
            try:
                listener(self.name, error)
            except Exception:
                logger.exception("error listener of sink %s failed", self.name)


def sink_name(sink: Callable[..., Any]) -> str:
    """A readable name for any sink callable: its ``name``, its owner's, or its function name."""
    for candidate in (sink, getattr(sink, "__self__", None)):
        name = getattr(candidate, "name", None)
        if isinstance(name, str) and name:
            return name
    return getattr(sink, "__name__", None) or type(sink).__name__


def close_sink(sink: Callable[..., Any]) -> None:
    """Close a sink given as an object or as a bound method (``video_sink.on_prediction``).

    Plain functions such as ``render_boxes`` have nothing to close.
    """
    for candidate in (sink, getattr(sink, "__self__", None)):
        closer = getattr(candidate, "close", None) or getattr(candidate, "release", None)
        if callable(closer):
            closer()
            return
