"""Every status event a pipeline emits: the event type, and where each payload is built.

``StatusUpdate`` has the fields of Roboflow's ``inference`` status update (``timestamp``,
``severity``, ``event_type``, ``payload``, ``context``) so existing ``status_update_handlers``
read it unchanged. Event types are Roboflow's strings where Roboflow has the event, with
Roboflow's payload keys; our richer keys ride along as extra keys. Payloads are built with
credentials already redacted.

``StatusEmitter`` turns what happened (a source changed state, a frame failed in the model, a
sink raised, frames were dropped) into ``StatusUpdate`` objects and hands them to the user's
``status_update_handlers``. A handler that raises is logged and skipped, never allowed to break
the loop that reported the event.

Emitter methods, one per happening (the loop calls these; the payload is built here only):

- ``source_state_changed(change)``: a source state listener. ``SOURCE_STATE_UPDATE`` on every
  transition, plus ``VIDEO_CONSUMPTION_STARTED`` when frames start flowing,
  ``VIDEO_CONSUMPTION_FINISHED`` when they stop (the source ended, or lost its link and
  reconnects), ``SOURCE_ERROR`` when it gave up.
- ``started(video_identifiers, model)`` / ``finished(terminated, status)``: ``PIPELINE_STARTED``
  from ``start()``; ``PIPELINE_ENDED`` / ``PIPELINE_TERMINATED`` once sinks are flushed.
- ``inference_thread_started(video_identifiers, exec_session_id=None)`` /
  ``inference_thread_finished(video_identifiers)``: the first and last statements of the
  inference thread (``INFERENCE_THREAD_STARTED`` / ``INFERENCE_THREAD_FINISHED``).
- ``inference_completed(frames)``: ``INFERENCE_COMPLETED`` (DEBUG) for one frame or batch; a
  no-op without handlers, so it costs nothing per frame unless someone listens.
- ``inference_error(frame, error, total)``: ``INFERENCE_ERROR``.
- ``dispatching_error(sink_name, error, total)``: ``INFERENCE_RESULTS_DISPATCHING_ERROR``, an
  exception raised by ``on_prediction`` itself.
- ``sink_error(sink_name, error, total)``: ``SINK_ERROR``, a sink inside a fan-out raised.
- ``frames_dropped(...)``, ``settings_changed(changes)``: ours, no Roboflow counterpart.

Severity is Roboflow's ``UpdateSeverity``: ``.value`` a ``logging`` level int. Our severities on
source state updates (WARNING when reconnecting, ERROR when it gave up) are kept, a documented
divergence from Roboflow's INFO for every state update.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.redact import redact
from pipeline.sources import SourceState, SourceStateChange
from pipeline.sources.base import StreamState
from pipeline.video_frame import VideoFrame
from sinks.serialize import utc_isoformat

if TYPE_CHECKING:
    from pipeline.loop.status import PipelineStatus

logger = logging.getLogger(__name__)

__all__ = [
    "EventType",
    "StatusEmitter",
    "StatusUpdate",
    "StatusUpdateHandler",
    "StreamState",
    "UpdateSeverity",
]


@functools.total_ordering
class UpdateSeverity(enum.Enum):
    """How much a status event matters: Roboflow's enum, ``.value`` a ``logging`` level.

    Roboflow's handlers filter with ``update.severity.value <= UpdateSeverity.DEBUG.value``; that
    works. A member also equals its name (``severity == "ERROR"``, as when this was a string
    enum), and members order by level (``severity >= UpdateSeverity.WARNING``).

    Examples:
        >>> UpdateSeverity.ERROR.value, UpdateSeverity.ERROR == "ERROR", str(UpdateSeverity.INFO)
        (40, True, 'INFO')
    """

    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UpdateSeverity):
            return self is other
        if isinstance(other, str):
            return other == self.name
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, UpdateSeverity):
            return bool(self.value < other.value)
        return NotImplemented

    def __str__(self) -> str:
        return self.name


class EventType(enum.StrEnum):
    """Every ``event_type`` a pipeline emits (Roboflow's names first, then ours)."""

    # Roboflow's, context "inference_pipeline"
    INFERENCE_THREAD_STARTED = "INFERENCE_THREAD_STARTED"
    INFERENCE_THREAD_FINISHED = "INFERENCE_THREAD_FINISHED"
    INFERENCE_COMPLETED = "INFERENCE_COMPLETED"  # DEBUG, per frame or batch, only with handlers
    INFERENCE_ERROR = "INFERENCE_ERROR"  # ours keeps the loop running (Roboflow's thread ends)
    INFERENCE_RESULTS_DISPATCHING_ERROR = "INFERENCE_RESULTS_DISPATCHING_ERROR"
    # Roboflow's, context "video_source"
    SOURCE_STATE_UPDATE = "SOURCE_STATE_UPDATE"
    SOURCE_STATE_CHANGED = "SOURCE_STATE_UPDATE"  # our earlier name, an alias of the same member
    VIDEO_CONSUMPTION_STARTED = "VIDEO_CONSUMPTION_STARTED"
    VIDEO_CONSUMPTION_FINISHED = "VIDEO_CONSUMPTION_FINISHED"
    SOURCE_ERROR = "SOURCE_ERROR"
    # ours
    PIPELINE_STARTED = "PIPELINE_STARTED"
    PIPELINE_ENDED = "PIPELINE_ENDED"  # every source finished by itself
    PIPELINE_TERMINATED = "PIPELINE_TERMINATED"  # stopped by terminate()
    FRAMES_DROPPED = "FRAMES_DROPPED"  # aggregated, about once a second, instead of per frame
    SINK_ERROR = "SINK_ERROR"  # a sink inside a fan-out (MultiSink) raised
    SETTINGS_CHANGED = "SETTINGS_CHANGED"  # class names or threshold changed at runtime


@dataclass(frozen=True)
class StatusUpdate:
    """One status event, handed to every ``status_update_handlers`` entry.

    Attributes:
        timestamp: wall clock of the event, a naive local-time ``datetime`` as in Roboflow
            (``to_dict`` gives it in UTC with its offset).
        severity: DEBUG (drops), INFO (state changes), WARNING (reconnecting), ERROR (failures).
        event_type: one of ``EventType``.
        payload: details, e.g. ``{"source_id": 0, "previous_state": ..., "new_state": ...}``.
        context: where it happened: ``"inference_pipeline"``, ``"video_source"``,
            ``"source/0"``, ``"sink/<name>"``.
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
        return cls(datetime.now(), severity, event_type, payload, context)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO timestamp in UTC, severity as its name."""
        return {
            "timestamp": utc_isoformat(self.timestamp),
            "severity": self.severity.name,
            "event_type": str(self.event_type),
            "payload": self.payload,
            "context": self.context,
        }


StatusUpdateHandler = Callable[[StatusUpdate], None]


PIPELINE_CONTEXT = "inference_pipeline"
SOURCE_CONTEXT = "video_source"
_STATE_SEVERITY = {
    SourceState.ERROR: UpdateSeverity.ERROR,
    SourceState.RECONNECTING: UpdateSeverity.WARNING,
}
# Entering these states means frames flow from the source (muted frames are decoded, then dropped).
_CONSUMING = (SourceState.RUNNING, SourceState.MUTED)
# Entering these states means the source stopped consuming: it ended, or lost its link.
_CONSUMPTION_ENDS = (SourceState.ENDED, SourceState.RECONNECTING)


class StatusEmitter:
    """Builds and delivers status events (the methods are listed in the module docstring).

    Args:
        handlers: each called with every ``StatusUpdate``, on the thread that caused it.
    """

    def __init__(self, handlers: Sequence[StatusUpdateHandler]) -> None:
        self.handlers = list(handlers)
        self._lock = threading.Lock()
        self._consuming: set[int] = set()  # source ids whose frames flow (VIDEO_CONSUMPTION_*)

    def emit(
        self,
        severity: UpdateSeverity,
        event_type: EventType,
        payload: dict[str, Any],
        context: str = PIPELINE_CONTEXT,
    ) -> None:
        update = StatusUpdate.now(severity, event_type.value, payload, context)
        for handler in self.handlers:
            try:
                handler(update)
            except Exception:
                logger.exception("status update handler %r failed", handler)

    def source_state_changed(self, change: SourceStateChange) -> None:
        """``SOURCE_STATE_UPDATE`` (INFO, WARNING when reconnecting, ERROR when the source gave
        up), then the consumption event the transition implies, if any.

        ``previous_state`` / ``new_state`` are ``StreamState`` members (Roboflow's keys);
        ``old`` / ``new`` are the same states as strings (ours; ``old`` is None for the first).
        """
        previous = change.old if change.old is not None else StreamState.NOT_STARTED
        self.emit(
            _STATE_SEVERITY.get(change.new, UpdateSeverity.INFO),
            EventType.SOURCE_STATE_UPDATE,
            {
                "previous_state": previous,
                "new_state": change.new,
                "source_id": change.source_id,
                "video_identifier": change.video_identifier,
                "reference": change.reference,
                "old": change.old.value if change.old else None,
                "new": change.new.value,
                "epoch": change.epoch,
                "reason": change.reason,
            },
            context=SOURCE_CONTEXT,
        )
        with self._lock:
            was_consuming = change.source_id in self._consuming
            if change.new in _CONSUMING:
                self._consuming.add(change.source_id)
            elif change.new in _CONSUMPTION_ENDS or change.new is SourceState.ERROR:
                self._consuming.discard(change.source_id)
        consumption = {
            "source_id": change.source_id,
            "video_identifier": change.video_identifier,
            "epoch": change.epoch,
        }
        if change.new in _CONSUMING and not was_consuming:
            self.emit(
                UpdateSeverity.INFO,
                EventType.VIDEO_CONSUMPTION_STARTED,
                consumption,
                context=SOURCE_CONTEXT,
            )
        elif change.new in _CONSUMPTION_ENDS and was_consuming:
            self.emit(
                UpdateSeverity.INFO,
                EventType.VIDEO_CONSUMPTION_FINISHED,
                consumption | {"reason": change.reason},
                context=SOURCE_CONTEXT,
            )
        elif change.new is SourceState.ERROR:
            self.emit(
                UpdateSeverity.ERROR,
                EventType.SOURCE_ERROR,
                {
                    "source_id": change.source_id,
                    "error_type": "SourceError",
                    "error_message": change.reason,
                    "error_context": "stream_consumer_thread",
                    "video_identifier": change.video_identifier,
                    "epoch": change.epoch,
                },
                context=SOURCE_CONTEXT,
            )

    def inference_thread_started(
        self, video_identifiers: Sequence[str], exec_session_id: str | None = None
    ) -> None:
        """INFO, Roboflow's event: the inference thread's first statement."""
        payload: dict[str, Any] = {"video_identifiers": list(video_identifiers)}
        if exec_session_id is not None:
            payload["exec_session_id"] = exec_session_id
        self.emit(UpdateSeverity.INFO, EventType.INFERENCE_THREAD_STARTED, payload)

    def inference_thread_finished(self, video_identifiers: Sequence[str]) -> None:
        """INFO, Roboflow's event: the inference thread's last statement, however it ended."""
        self.emit(
            UpdateSeverity.INFO,
            EventType.INFERENCE_THREAD_FINISHED,
            {"video_identifiers": list(video_identifiers)},
        )

    def inference_completed(self, frames: Sequence[VideoFrame | None]) -> None:
        """DEBUG, Roboflow's keys: one frame, or a batch (``None`` where a source had none).

        Skipped without handlers, so the per-frame payload is never built for nobody.
        """
        if not self.handlers:
            return
        present = [frame for frame in frames if frame is not None]
        self.emit(
            UpdateSeverity.DEBUG,
            EventType.INFERENCE_COMPLETED,
            {
                "frames_ids": [frame.frame_id for frame in present],
                "frames_timestamps": [frame.frame_timestamp for frame in present],
                "sources_id": [frame.source_id for frame in present],
            },
        )

    def inference_error(self, frame: VideoFrame, error: BaseException, total: int) -> None:
        """ERROR with Roboflow's keys; unlike Roboflow the loop goes on with the next frame."""
        message = redact(error)
        self.emit(
            UpdateSeverity.ERROR,
            EventType.INFERENCE_ERROR,
            {
                "error_type": type(error).__name__,
                "error_message": message,
                "error_context": "inference_thread",
                "source_id": frame.source_id,
                "video_identifier": frame.video_identifier,
                "frame_id": frame.frame_id,
                "epoch": frame.epoch,
                "error": message,
                "inference_errors": total,
            },
            context=f"source/{frame.source_id}",
        )

    def dispatching_error(self, sink_name: str, error: BaseException, total: int) -> None:
        """ERROR, Roboflow's event for an exception raised by ``on_prediction`` itself."""
        message = redact(error)
        self.emit(
            UpdateSeverity.ERROR,
            EventType.INFERENCE_RESULTS_DISPATCHING_ERROR,
            {
                "error_type": type(error).__name__,
                "error_message": message,
                "error_context": "inference_results_dispatching",
                "sink": redact(sink_name),
                "error": message,
                "sink_errors": total,
            },
        )

    def sink_error(self, sink_name: str, error: BaseException, total: int) -> None:
        """ERROR, ours: a sink inside a fan-out raised (the others went on)."""
        name = redact(sink_name)
        message = redact(error)
        self.emit(
            UpdateSeverity.ERROR,
            EventType.SINK_ERROR,
            {
                "sink": name,
                "error": message,
                "error_type": type(error).__name__,
                "error_message": message,
                "sink_errors": total,
            },
            context=f"sink/{name}",
        )

    def frames_dropped(
        self, source_id: int, video_identifier: str, dropped: int, total: int
    ) -> None:
        """DEBUG: dropping stale frames is how live sources keep latency bounded."""
        self.emit(
            UpdateSeverity.DEBUG,
            EventType.FRAMES_DROPPED,
            {
                "source_id": source_id,
                "video_identifier": video_identifier,
                "dropped": dropped,
                "frames_dropped": total,
            },
            context=f"source/{source_id}",
        )

    def settings_changed(self, changes: dict[str, Any]) -> None:
        self.emit(UpdateSeverity.INFO, EventType.SETTINGS_CHANGED, changes)

    def started(self, video_identifiers: list[str], model: str, exec_session_id: str) -> None:
        self.emit(
            UpdateSeverity.INFO,
            EventType.PIPELINE_STARTED,
            {
                "video_identifiers": video_identifiers,
                "model": redact(model),
                "exec_session_id": exec_session_id,
            },
        )

    def finished(self, terminated: bool, status: PipelineStatus) -> None:
        self.emit(
            UpdateSeverity.INFO,
            EventType.PIPELINE_TERMINATED if terminated else EventType.PIPELINE_ENDED,
            {
                "frames_processed": status.frames_processed,
                "inference_errors": status.inference_errors,
                "sink_errors": status.sink_errors,
            },
        )
