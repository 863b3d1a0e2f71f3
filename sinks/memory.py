"""Keep the last few ``on_prediction`` calls in memory, for code that polls instead of reacting."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from sinks.errors import SinkConfigError


class InMemoryBufferSink:
    """Roboflow's ``InMemoryBufferSink``: the last ``queue_size`` calls, oldest dropped first.

    Each call is stored whole, as ``(predictions_list, frames_list)``: a single-source call is
    wrapped into one-entry lists, a multi-source batch keeps its lists (``None`` entries
    included). That is why it is not a ``Sink``, which handles one frame at a time. The buffer is
    bounded, so a consumer that stops reading costs ``queue_size`` entries, never more.

    Args:
        queue_size: calls kept; the oldest is dropped when a new one arrives and the buffer is
            full.

    Examples:
        >>> buffer = InMemoryBufferSink.init(queue_size=2)
        >>> for frame_id in (1, 2, 3):
        ...     buffer.on_prediction({"frame": frame_id}, f"frame-{frame_id}")
        >>> buffer.consume_prediction()
        ([{'frame': 2}], ['frame-2'])
        >>> len(buffer), buffer.empty()
        (1, False)
    """

    def __init__(self, queue_size: int) -> None:
        if int(queue_size) < 1:
            raise SinkConfigError(
                f"InMemoryBufferSink queue_size must be 1 or more: {queue_size!r}"
            )
        self._buffer: deque[tuple[list[Any], list[Any]]] = deque(maxlen=int(queue_size))
        self._lock = threading.Lock()

    @classmethod
    def init(cls, queue_size: int) -> InMemoryBufferSink:
        """Create the sink: Roboflow's spelling of the constructor."""
        return cls(queue_size)

    def on_prediction(self, predictions: Any, video_frame: Any) -> None:
        """Store the call as ``(predictions_list, frames_list)``."""
        predictions_list = predictions if isinstance(predictions, list) else [predictions]
        frames_list = video_frame if isinstance(video_frame, list) else [video_frame]
        with self._lock:
            self._buffer.append((predictions_list, frames_list))

    def __call__(self, predictions: Any, video_frame: Any) -> None:
        self.on_prediction(predictions, video_frame)

    def empty(self) -> bool:
        """True when there is nothing to consume."""
        with self._lock:
            return not self._buffer

    def consume_prediction(self) -> tuple[list[Any], list[Any]]:
        """Remove and return the oldest stored call.

        Raises:
            IndexError: the buffer is empty (check ``empty()`` first), as Roboflow's does.
        """
        with self._lock:
            return self._buffer.popleft()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buffer)

    def close(self) -> None:
        """Nothing to finalise; here so ``close_sink`` and the pipeline treat it like a sink."""

    def release(self) -> None:
        """Same as ``close()``."""
