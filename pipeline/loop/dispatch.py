"""The hand-over between the inference loop and ``on_prediction``.

Results go through a small bounded queue so that the model never waits for a sink and sinks can
run on the main thread (OpenCV windows need it on some platforms). The queue is the one
``FrameQueue`` every hand-over of frames uses (see ``sinks.frame_queue`` for the policy): a result
from a file waits for room, a result from a live source never waits and the oldest live result
makes room (dropped, counted by the loop as ``dispatch_dropped``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.video_frame import VideoFrame
from sinks.frame_queue import FrameQueue

DISPATCH_QUEUE_RESULTS = 4


@dataclass(frozen=True, eq=False)  # compared by identity: frames hold arrays
class Dispatch:
    """One result on its way to ``on_prediction``.

    Attributes:
        result: ``sv.Detections`` (``init``) or the workflow result dict (``init_with_workflow``).
        frame: the frame it belongs to.
        grabbed_at: ``time.monotonic()`` when decoding of the frame started.
        live: the frame came from a live source (may be dropped) rather than a file.
    """

    result: Any
    frame: VideoFrame
    grabbed_at: float
    live: bool


class DispatchQueue(FrameQueue[Dispatch]):
    """The loop's ``FrameQueue`` of results; each result says itself whether it is live.

    Examples:
        >>> queue = DispatchQueue(capacity=1)
        >>> queue.close()
        >>> queue.get() is None
        True
    """

    def __init__(self, capacity: int = DISPATCH_QUEUE_RESULTS) -> None:
        super().__init__(capacity, is_live=_is_live)


def _is_live(dispatch: Dispatch) -> bool:
    return dispatch.live
