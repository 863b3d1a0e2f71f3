"""The hand-over between the inference loop and ``on_prediction``.

Results go through a small bounded queue so that the model never waits for a sink and sinks can
run on the main thread (OpenCV windows need it on some platforms). The queue is the one
``FrameQueue`` every hand-over of frames uses (see ``sinks.frame_queue`` for the policy): a result
from a file waits for room, a result from a live source never waits and the oldest live result
makes room (dropped, counted by the loop as ``dispatch_dropped``).

With several sources in ``SinkMode.BATCH`` a hand-over is a round (``Dispatch.batch``): one call
with lists, one entry per source, ``None`` where a source had no frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.video_frame import VideoFrame
from sinks.frame_queue import FrameQueue

DISPATCH_QUEUE_RESULTS = 4


@dataclass(frozen=True, eq=False)  # compared by identity: frames hold arrays
class Dispatch:
    """One call of ``on_prediction`` on its way: one frame, or one round of several sources.

    Attributes:
        result: ``sv.Detections`` (``init``) or the workflow result dict (``init_with_workflow``);
            for a round, a list of them with ``None`` where a source had no frame.
        frame: the frame it belongs to; for a round, a list aligned with ``result``.
        grabbed_at: ``time.monotonic()`` when decoding of the frame started; for a round, one
            entry per source (``None`` where it had no frame).
        live: the frame came from a live source (may be dropped) rather than a file; a round is
            live only when all its frames are, so a round holding a file frame is never dropped.
    """

    result: Any
    frame: VideoFrame | list[VideoFrame | None]
    grabbed_at: float | tuple[float | None, ...]
    live: bool

    @classmethod
    def batch(cls, slots: Sequence[Dispatch | None]) -> Dispatch:
        """One round: ``slots[i]`` is source ``i``'s single-frame dispatch, or None.

        Examples:
            >>> Dispatch.batch([None]).frame
            [None]
        """
        present = [slot for slot in slots if slot is not None]
        return cls(
            result=[None if slot is None else slot.result for slot in slots],
            frame=[None if slot is None else slot.single_frame for slot in slots],
            grabbed_at=tuple(None if slot is None else slot.single_grabbed_at for slot in slots),
            live=all(slot.live for slot in present),
        )

    @property
    def single_frame(self) -> VideoFrame:
        """The frame of a single-frame dispatch (not a round)."""
        assert isinstance(self.frame, VideoFrame), "a round has no single frame"
        return self.frame

    @property
    def single_grabbed_at(self) -> float:
        assert isinstance(self.grabbed_at, float | int), "a round has no single grab time"
        return float(self.grabbed_at)

    def frames(self) -> Iterator[tuple[VideoFrame, float]]:
        """Each frame it carries with its grab time (``None`` entries of a round skipped)."""
        if isinstance(self.frame, VideoFrame):
            yield self.frame, self.single_grabbed_at
            return
        assert isinstance(self.grabbed_at, tuple)
        for frame, grabbed_at in zip(self.frame, self.grabbed_at, strict=True):
            if frame is not None and grabbed_at is not None:
                yield frame, grabbed_at


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
