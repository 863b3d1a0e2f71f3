"""What travels between a worker and the front door, and the worker's bounded result buffer.

BUFFER POLICY (the same as ``pipeline.service.sse``): each remote stream keeps at most
``max_frames`` results (the server's ``event_buffer``, 32 by default) until the front door pulls
them. When the front door falls behind, the oldest result is discarded and counted, so a slow
front door sees recent frames with gaps and the worker's model never waits for it.

A frame's image crosses the wire only while the front door asks for it (a WebRTC viewer is
watching); otherwise the front door gets a zero-stride stand-in of the right shape (the SSE record
needs the frame's width and height, not its pixels). Masks are bit-packed on the wire (8x smaller).

Examples:
    >>> buffer = ResultBuffer(max_frames=2)
    >>> for frame_id in range(3):
    ...     buffer.push(frame_id)
    >>> buffer.take(), buffer.dropped
    ([1, 2], 1)
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import numpy as np
import supervision as sv

from pipeline.loop.status import PipelineStatus
from pipeline.loop.status_events import StatusUpdate
from pipeline.video_frame import VideoFrame

Item = TypeVar("Item")


class ResultBuffer(Generic[Item]):
    """A bounded drop-oldest queue (see the module's BUFFER POLICY); thread-safe."""

    def __init__(self, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.dropped = 0
        self._items: deque[Item] = deque()
        self._max = max_frames
        self._lock = threading.Lock()

    def push(self, item: Item) -> None:
        with self._lock:
            if len(self._items) >= self._max:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)

    def take(self) -> list[Item]:
        """Everything queued, oldest first; the buffer is empty afterwards."""
        with self._lock:
            items, self._items = list(self._items), deque()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@dataclass(frozen=True)
class WireFrame:
    """One frame's result on its way to the front door (picklable, masks bit-packed).

    Attributes:
        stream_id: the front door's stream id.
        detections: the frame's detections without masks (``mask`` is None).
        packed_masks: ``np.packbits`` of the (N, H, W) bool masks, None when there were none.
        frame: the frame with a stand-in image (``image`` is None here).
        size: (height, width) of the frame.
        image: (H, W, 3) uint8 BGR, only while the front door asked for images.
    """

    stream_id: str
    detections: sv.Detections
    packed_masks: np.ndarray | None
    frame: VideoFrame
    size: tuple[int, int]
    image: np.ndarray | None

    @classmethod
    def pack(
        cls, stream_id: str, detections: sv.Detections, frame: VideoFrame, *, with_image: bool
    ) -> WireFrame:
        """The wire form of one result (called on the worker's sink thread)."""
        height, width = frame.image.shape[:2]
        masks = detections.mask
        packed = np.packbits(np.asarray(masks), axis=None) if masks is not None else None
        bare = sv.Detections(
            xyxy=detections.xyxy,
            mask=None,
            confidence=detections.confidence,
            class_id=detections.class_id,
            tracker_id=detections.tracker_id,
            data=dict(detections.data),
        )
        frame_meta = replace(frame, image=None)  # type: ignore[arg-type]
        image = np.ascontiguousarray(frame.image) if with_image else None
        return cls(stream_id, bare, packed, frame_meta, (height, width), image)

    def unpack(self) -> tuple[sv.Detections, VideoFrame]:
        """The detections and frame as the front door's outputs take them."""
        height, width = self.size
        detections = self.detections
        if self.packed_masks is not None:
            count = len(detections)
            bits = np.unpackbits(self.packed_masks, count=count * height * width)
            detections = sv.Detections(
                xyxy=detections.xyxy,
                mask=bits.reshape(count, height, width).astype(bool),  # (N, H, W) bool
                confidence=detections.confidence,
                class_id=detections.class_id,
                tracker_id=detections.tracker_id,
                data=dict(detections.data),
            )
        image = self.image
        if image is None:  # the shape without the pixels: no viewer is watching
            image = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (height, width, 3))
        return detections, replace(self.frame, image=image)


@dataclass(frozen=True)
class PollReply:
    """What one ``StreamWorker.poll`` returns: everything new since the previous poll.

    Attributes:
        frames: results of every stream, oldest first per stream.
        updates: (stream_id, status update) in the order they happened.
        statuses: each stream's ``status()`` taken after the updates above.
        reservations: video_identifier -> tracker-id ceiling the worker waits to be granted.
        highest_ids: video_identifier -> the largest tracker id its registry handed out.
        dropped: stream_id -> results its buffer discarded so far (the front door fell behind).
    """

    frames: list[WireFrame] = field(default_factory=list)
    updates: list[tuple[str, StatusUpdate]] = field(default_factory=list)
    statuses: Mapping[str, PipelineStatus] = field(default_factory=dict)
    reservations: Mapping[str, int] = field(default_factory=dict)
    highest_ids: Mapping[str, int] = field(default_factory=dict)
    dropped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamLaunch:
    """Everything a worker needs to run one stream (the front door checked it all already).

    Attributes:
        stream_id: the front door's id.
        video_identifier: the session key, unique across the cluster.
        source: the source to open (after ``ApiAccess``: a path under the media root, a URL).
        classes / threshold / max_fps: the stream's settings now (changes update the launch, so
            a failover restarts with what the stream had).
        sinks: sink specs to open on the worker (jsonl/video files, webhooks, UDP).
        source_options: ``SourceOptions`` keyword arguments.
        max_objects: the stream's own object budget; None: the worker's default.
        paused: start paused.
        epoch: the first epoch of this run.
        id_floor: every tracker id the identifier ever emitted is at or below this.
    """

    stream_id: str
    video_identifier: str
    source: Any
    classes: tuple[str, ...]
    threshold: float
    max_fps: float | None
    sinks: tuple[str, ...]
    source_options: Mapping[str, Any]
    max_objects: int | None
    paused: bool = False
    epoch: int = 0
    id_floor: int = 0


@dataclass(frozen=True)
class CallOutcome:
    """A worker call's result, with a user error carried by its kind and message, not a trace.

    Ray would re-raise a worker exception wrapped with the worker's traceback in its text; the
    API must answer the same one-line 4xx as in-process, so the kind and message travel instead.
    """

    value: Any = None
    error_kind: str | None = None
    message: str = ""
    field: str | None = None
