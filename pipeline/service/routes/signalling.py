"""``/streams/{id}/webrtc``: WebRTC signalling, one SDP offer in, one answer out.

Asynchronous because aiortc's peer connections live on the event loop; the media side is
``pipeline.service.webrtc``. An offer over the viewer caps is answered 429 before any peer
connection is made (``pipeline.service.viewer_slots``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pipeline.service.dependencies import ViewerPublisherDep
from pipeline.service.error_responses import STREAM_ERRORS
from pipeline.service.models import ErrorBody, WebRTCAnswer, WebRTCOffer

router = APIRouter(tags=["live"])

WEBRTC_ERRORS: dict[int | str, dict[str, Any]] = {
    **STREAM_ERRORS,
    429: {
        "model": ErrorBody,
        "description": "The stream or the server has as many viewers as allowed; "
        "`detail` names the limit.",
    },
}


@router.post("/streams/{stream_id}/webrtc", response_model=WebRTCAnswer, responses=WEBRTC_ERRORS)
async def webrtc_offer(offer: WebRTCOffer, publisher: ViewerPublisherDep) -> WebRTCAnswer:
    """Take a browser's SDP offer, answer it: annotated video plus a detections channel."""
    answer = await publisher.answer(offer)
    return WebRTCAnswer(sdp=answer.sdp)
