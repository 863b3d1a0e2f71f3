"""``/streams/{id}/events``: live detections as Server-Sent Events.

Asynchronous: a response lives on the event loop for as long as the client listens, and the
buffer between the stream and each client is ``EventHub``'s (see ``pipeline.service.sse``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from pipeline.service.dependencies import EventHubDep
from pipeline.service.error_responses import STREAM_ERRORS
from pipeline.service.sse import sse_lines

router = APIRouter(tags=["live"])


@router.get(
    "/streams/{stream_id}/events",
    response_class=StreamingResponse,
    responses={
        **STREAM_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."},
    },
)
async def stream_events(
    events: EventHubDep,
    masks: Literal["none", "rle", "polygon"] = Query(
        "none", description="Mask encoding in each event: none, rle (COCO) or polygon."
    ),
) -> StreamingResponse:
    """Live detections as Server-Sent Events, one JSONL record per frame.

    Each client has a bounded buffer: a slow client loses the oldest events (a gap in
    ``id:``), the stream never waits for it.
    """
    subscription = events.subscribe(masks, asyncio.get_running_loop())

    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in sse_lines(subscription):
                yield chunk
        finally:
            events.unsubscribe(subscription)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
