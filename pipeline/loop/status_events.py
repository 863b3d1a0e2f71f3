"""Every status event a pipeline emits: the event type, and where each payload is built.

``StatusUpdate`` has the fields of Roboflow's ``inference`` status update (``timestamp``,
``severity``, ``event_type``, ``payload``, ``context``) so existing ``status_update_handlers``
read it unchanged. Event types are the strings of ``EventType``; payloads are JSON-ready dicts
with credentials already redacted.

``StatusEmitter`` turns what happened (a source changed state, a frame failed in the model, a
sink raised, frames were dropped) into ``StatusUpdate`` objects and hands them to the user's
``status_update_handlers``. A handler that raises is logged and skipped, never allowed to break
the loop that reported the event.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.redact import redact
from pipeline.sources import SourceState, SourceStateChange
from pipeline.video_frame import VideoFrame

if TYPE_CHECKING:
    from pipeline.loop.status import PipelineStatus

logger = logging.getLogger(__name__)


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


PIPELINE_CONTEXT = "inference_pipeline"
_STATE_SEVERITY = {
    SourceState.ERROR: UpdateSeverity.ERROR,
    SourceState.RECONNECTING: UpdateSeverity.WARNING,
}


class StatusEmitter:
    """Builds and delivers status events.

    Args:
        handlers: each called with every ``StatusUpdate``, on the thread that caused it.
    """

    def __init__(self, handlers: Sequence[StatusUpdateHandler]) -> None:
        self.handlers = list(handlers)

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
        """INFO, WARNING when reconnecting, ERROR when the source gave up."""
        self.emit(
            _STATE_SEVERITY.get(change.new, UpdateSeverity.INFO),
            EventType.SOURCE_STATE_CHANGED,
            {
                "source_id": change.source_id,
                "video_identifier": change.video_identifier,
                "reference": change.reference,
                "old": change.old.value if change.old else None,
                "new": change.new.value,
                "epoch": change.epoch,
                "reason": change.reason,
            },
            context=f"source/{change.source_id}",
        )

    def inference_error(self, frame: VideoFrame, error: BaseException, total: int) -> None:
        self.emit(
            UpdateSeverity.ERROR,
            EventType.INFERENCE_ERROR,
            {
                "source_id": frame.source_id,
                "video_identifier": frame.video_identifier,
                "frame_id": frame.frame_id,
                "epoch": frame.epoch,
                "error": redact(error),
                "error_type": type(error).__name__,
                "inference_errors": total,
            },
            context=f"source/{frame.source_id}",
        )

    def sink_error(self, sink_name: str, error: BaseException, total: int) -> None:
        name = redact(sink_name)
        self.emit(
            UpdateSeverity.ERROR,
            EventType.SINK_ERROR,
            {
                "sink": name,
                "error": redact(error),
                "error_type": type(error).__name__,
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

    def started(self, video_identifiers: list[str], model: str) -> None:
        self.emit(
            UpdateSeverity.INFO,
            EventType.PIPELINE_STARTED,
            {"video_identifiers": video_identifiers, "model": redact(model)},
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
