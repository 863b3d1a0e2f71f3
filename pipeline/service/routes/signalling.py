"""``/streams/{id}/webrtc``: WebRTC signalling, one SDP offer in, one answer out.

Asynchronous because aiortc's peer connections live on the event loop; the media side is
``pipeline.service.webrtc``.
"""

from __future__ import annotations

from fastapi import APIRouter

from pipeline.service.dependencies import ViewerPublisherDep
from pipeline.service.error_responses import STREAM_ERRORS
from pipeline.service.models import WebRTCAnswer, WebRTCOffer

router = APIRouter(tags=["live"])


@router.post("/streams/{stream_id}/webrtc", response_model=WebRTCAnswer, responses=STREAM_ERRORS)
async def webrtc_offer(offer: WebRTCOffer, publisher: ViewerPublisherDep) -> WebRTCAnswer:
    """Take a browser's SDP offer, answer it: annotated video plus a detections channel."""
    answer = await publisher.answer(offer)
    return WebRTCAnswer(sdp=answer.sdp)
