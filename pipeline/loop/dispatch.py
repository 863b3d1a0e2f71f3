"""The hand-over between the inference loop and ``on_prediction``.

Results go through a small bounded queue so that the model never waits for a sink and sinks can
run on the main thread (OpenCV windows need it on some platforms). The policy follows the frame's
source, like the frame buffers do:

- a result from a file waits for room: every frame of a file reaches the sinks, in order;
- a result from a live source never waits: when the queue is full the oldest *live* result is
  dropped (and counted), so what the sinks show stays recent however slow they are.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from pipeline.video_frame import VideoFrame

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


class DispatchQueue:
    """A bounded FIFO with the drop policy described in the module docstring.

    Examples:
        >>> queue = DispatchQueue(capacity=1)
        >>> queue.close()
        >>> queue.get() is None
        True
    """

    def __init__(self, capacity: int = DISPATCH_QUEUE_RESULTS) -> None:
        self.capacity = capacity
        self._items: deque[Dispatch] = deque()
        # Re-entrant: terminate() may run in a signal handler on a thread that is inside get().
        self._condition = threading.Condition(threading.RLock())
        self._closed = False
        self._stopped = False

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)

    def put(self, item: Dispatch) -> Dispatch | None:
        """Queue ``item``; returns the result dropped to make room (or ``item`` itself), if any."""
        with self._condition:
            if not item.live:
                self._condition.wait_for(
                    lambda: len(self._items) < self.capacity or self._stopped or self._closed
                )
            if self._stopped or self._closed:
                return item
            dropped = None
            if len(self._items) >= self.capacity:
                dropped = next((queued for queued in self._items if queued.live), item)
                if dropped is item:
                    return item
                self._items.remove(dropped)
            self._items.append(item)
            self._condition.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> Dispatch | None:
        """The next result; None on timeout, once closed and drained, or at once when stopped."""
        with self._condition:
            self._condition.wait_for(lambda: self._items or self._closed or self._stopped, timeout)
            if self._stopped or not self._items:
                return None
            item = self._items.popleft()
            self._condition.notify_all()
            return item

    @property
    def finished(self) -> bool:
        """Nothing more will come out: stopped, or closed and drained."""
        with self._condition:
            return self._stopped or (self._closed and not self._items)

    def close(self) -> None:
        """No more results will be put; the consumer drains what is queued."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def stop(self) -> int:
        """Drop everything queued and wake everybody; returns how many results were dropped."""
        with self._condition:
            self._stopped = True
            dropped = len(self._items)
            self._items.clear()
            self._condition.notify_all()
            return dropped
