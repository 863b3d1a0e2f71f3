"""Every status event a pipeline emits, built in one place so each payload's shape is findable.

``StatusEmitter`` turns what happened (a source changed state, a frame failed in the model, a
sink raised, frames were dropped) into ``StatusUpdate`` objects and hands them to the user's
``status_update_handlers``. Payloads are JSON-ready and redacted; a handler that raises is
logged and skipped, never allowed to break the loop that reported the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.loop.status import EventType, StatusUpdate, UpdateSeverity
from pipeline.redact import redact
from pipeline.sources import SourceState, SourceStateChange

logger = logging.getLogger(__name__)

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

    def __init__(self, handlers: Sequence[Callable[[StatusUpdate], None]]) -> None:
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

    def inference_error(self, frame: Any, error: BaseException, total: int) -> None:
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

    def finished(self, terminated: bool, status: dict[str, Any]) -> None:
        self.emit(
            UpdateSeverity.INFO,
            EventType.PIPELINE_TERMINATED if terminated else EventType.PIPELINE_ENDED,
            {
                "frames_processed": status["frames_processed"],
                "inference_errors": status["inference_errors"],
                "sink_errors": status["sink_errors"],
            },
        )
