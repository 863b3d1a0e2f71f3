"""Visual prompts over HTTP: a ``PromptRequest`` becomes a ``VisualPrompt`` for a stream's pipeline.

The rules live elsewhere, each in one place: how boxes, points and labels combine is
``tracker.VisualPrompt``'s, whether they fit the frame and whether a ``tracker_id`` is live is the
session registry's. This module only decides which answer a client gets when they say no:

- the stream's pipeline ENDED or was TERMINATED, or its source ENDED or gave up (ERROR): 409
  naming the state. A PAUSED stream takes prompts; they are placed on its next frame.
- ``frame_id`` ahead of the latest frame processed (of frame 0 before the first): 422 (a prompt
  for a frame nobody has seen would wait for it, holding an object slot, possibly forever).
- a ``ValueError`` naming a request field (``"boxes[0]: ..."``): 422 naming that field;
  ``max_objects`` (the stream's budget is full of prompted objects) and ``state`` (the pipeline
  ended meanwhile): 409.
- ``KeyError`` from ``remove_object``: 404 naming ``tracker_id``.

Nothing here stops or reseeds the stream: a refused prompt leaves it running as it was.
"""

from __future__ import annotations

import re

from pipeline.loop.contracts import ManagedPipeline
from pipeline.loop.status import PipelineState, PipelineStatus, SourceStatus
from pipeline.redact import redact
from pipeline.service.api_errors import (
    InvalidStreamError,
    ServiceError,
    StreamConflictError,
)
from pipeline.service.models import PromptRequest
from pipeline.sources import SourceState
from tracker.visual_prompts import VisualPrompt

PROMPT_FIELDS = frozenset(PromptRequest.model_fields)
"""Request fields a tracker error may name; its message starts ``field:`` or ``field[i]:``."""

STOPPED_PIPELINE_STATES = frozenset({PipelineState.ENDED, PipelineState.TERMINATED})
STOPPED_SOURCE_STATES = frozenset({SourceState.ENDED, SourceState.ERROR})

_FIELD_PREFIX = re.compile(r"^\s*([a-z_]+)(?:\[\d+\])?\s*:")


class InvalidPromptError(ServiceError):
    """A prompt the tracker refused for a reason that names no request field (422)."""

    status_code = 422


def visual_prompt(request: PromptRequest) -> VisualPrompt:
    """The tracker's prompt for ``request``; ``InvalidStreamError`` (422) naming the field."""
    try:
        return VisualPrompt(
            boxes=tuple((x0, y0, x1, y1) for x0, y0, x1, y1 in request.boxes),
            points=tuple((x, y) for x, y in request.points),
            labels=tuple(request.labels),
            tracker_id=request.tracker_id,
            frame_id=request.frame_id,
            class_name=request.class_name,
        )
    except ValueError as error:
        raise refused_prompt(error) from None


def latest_frame_id(stream_id: str, status: PipelineStatus, source_id: int | None) -> int | None:
    """The last frame the model processed for the prompted source, after checking it runs.

    Raises:
        StreamConflictError: the pipeline or the source is no longer running (409).
        InvalidStreamError: ``source_id`` is not a source of this stream (422).
    """
    if status.state in STOPPED_PIPELINE_STATES:
        raise _not_running(stream_id, f"its pipeline is {status.state.value}")
    source = _source(status, source_id)
    if source.stats.state in STOPPED_SOURCE_STATES:
        raise _not_running(stream_id, f"its source is {source.stats.state.value}")
    return source.last_frame_id


def check_frame_id(frame_id: int | None, latest: int | None) -> None:
    """Refuse a ``frame_id`` no frame of the stream has reached yet (422 naming ``frame_id``).

    Before the first frame only frame 0 (the first) may be named.
    """
    if frame_id is None or frame_id <= (latest if latest is not None else 0):
        return
    seen = f"the latest frame is {latest}" if latest is not None else "no frame was processed yet"
    raise InvalidStreamError(
        "frame_id",
        f"frame_id: {frame_id} is ahead of the stream ({seen}): give the frame the coordinates "
        "were drawn on, or null for the latest frame",
    )


def refused_prompt(error: ValueError) -> ServiceError:
    """The answer to a ``ValueError`` from ``VisualPrompt`` or ``add_prompt`` (module docstring)."""
    message = redact(error)
    match = _FIELD_PREFIX.match(message)
    field = match.group(1) if match else None
    if field == "state":  # the pipeline ended between the check and the call
        return StreamConflictError(message)
    if field == "max_objects":
        return StreamConflictError(
            f"{message}: remove an object (DELETE /streams/{{id}}/objects/{{tracker_id}}) first"
        )
    if field in PROMPT_FIELDS:
        return InvalidStreamError(field, message)
    return InvalidPromptError(message)


def refused_after_check(
    stream_id: str, error: ValueError, pipeline: ManagedPipeline
) -> ServiceError:
    """A ``ValueError`` from the pipeline: 409 if it stopped meanwhile, else ``refused_prompt``."""
    status = pipeline.status()
    if status.state in STOPPED_PIPELINE_STATES:
        return _not_running(stream_id, f"its pipeline is {status.state.value}")
    return refused_prompt(error)


def _source(status: PipelineStatus, source_id: int | None) -> SourceStatus:
    if source_id is None and len(status.sources) == 1:
        return status.sources[0]
    for source in status.sources:
        if source.stats.source_id == source_id:
            return source
    known = ", ".join(str(source.stats.source_id) for source in status.sources)
    raise InvalidStreamError(
        "source_id",
        f"source_id: {source_id} is not a source of this stream (its sources: {known})",
    )


def _not_running(stream_id: str, why: str) -> StreamConflictError:
    return StreamConflictError(
        f"stream {stream_id!r} is not running ({why}): prompts need a running stream; "
        f"POST /streams/{stream_id}/restart runs it again"
    )
