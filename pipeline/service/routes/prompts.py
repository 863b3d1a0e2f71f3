"""``/streams/{id}/prompts`` and ``/streams/{id}/objects/{tracker_id}``: point at what to track.

Visual prompting of a running stream: boxes and labelled points (pixels of the frame they were
drawn on) start or refine objects, and any live object can be ended by its tracker id. Each route
calls one ``StreamManager`` method; ``pipeline.service.stream_prompts`` decides which refusal is
which status. A refused request changes nothing: the stream keeps running.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from pipeline.service.dependencies import ManagerDep
from pipeline.service.error_responses import STREAM_ERRORS
from pipeline.service.models import MAX_TRACKER_ID, ErrorBody, PromptRequest, PromptResult

router = APIRouter(tags=["prompts"])

PROMPT_ERRORS: dict[int | str, dict[str, Any]] = {
    **STREAM_ERRORS,
    409: {
        "model": ErrorBody,
        "description": "The stream is not running, or its object budget is full of prompted "
        "objects (`max_objects`).",
    },
}

OBJECT_ERRORS: dict[int | str, dict[str, Any]] = {
    **STREAM_ERRORS,
    404: {
        "model": ErrorBody,
        "description": "No stream with this id, or no live object with this `tracker_id`.",
    },
    409: {"model": ErrorBody, "description": "The stream is not running."},
}

TrackerIdPath = Annotated[int, Path(ge=0, le=MAX_TRACKER_ID, description="A live object's id.")]
SourceIdQuery = Annotated[
    int | None, Query(ge=0, le=MAX_TRACKER_ID, description="The source (a stream has one).")
]


@router.post(
    "/streams/{stream_id}/prompts",
    status_code=201,
    response_model=PromptResult,
    responses={**PROMPT_ERRORS, 200: {"model": PromptResult, "description": "Refined."}},
)
def add_prompt(
    stream_id: str, request: PromptRequest, response: Response, manager: ManagerDep
) -> PromptResult:
    """Track what the boxes and points show, from the stream's next frame on.

    Each box starts one object; points (with one label each: 1 here, 0 not here) go to one
    object, with at most one box. With ``tracker_id`` the prompt refines that object and keeps its
    id (200); otherwise new ids come back (201), unique beside the class-prompted tracks.
    Coordinates are pixels of frame ``frame_id`` (the ``width`` x ``height`` of its detection
    record), or of the latest frame when it is null. At most 64 boxes and 64 points a request.
    """
    result = manager.add_prompt(stream_id, request)
    if request.tracker_id is not None:
        response.status_code = 200
    return result


@router.delete(
    "/streams/{stream_id}/objects/{tracker_id}",
    status_code=204,
    response_class=Response,
    responses=OBJECT_ERRORS,
)
def remove_object(
    stream_id: str, tracker_id: TrackerIdPath, manager: ManagerDep, source_id: SourceIdQuery = None
) -> Response:
    """End a live object now, prompted or found by a class; its id is never used again.

    A class-prompted object may be found again by the detector, under a new id.
    """
    manager.remove_object(stream_id, tracker_id, source_id)
    return Response(status_code=204)
