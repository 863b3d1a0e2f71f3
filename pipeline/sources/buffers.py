"""The bounded buffers between a source's decode thread and the inference loop.

Two policies, chosen by what the frames are for:

- ``FreshestFrameBuffer`` (live cameras): one slot. A new frame replaces an unread one, which is
  dropped and counted. The consumer always gets the newest frame, so end-to-end latency stays at
  one model step however slow the model is; a FIFO would grow it without bound.
- ``BlockingFrameBuffer`` (files): a few slots; the producer waits while they are full, so every
  frame of a file is processed, in order, at the consumer's pace.

Both are closed by the producer at the end (the consumer drains what is left, then gets None at
once) or by ``stop()`` (``discard()`` throws the rest away and wakes everybody). A
``FrameNotifier`` shared by several buffers lets one consumer sleep until any of them has a frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameNotifier:
    """Wakes one consumer that polls several buffers when any of them receives a frame.

    Take ``version`` *before* polling, then ``wait(version, timeout)``: a frame that arrives while
    you poll bumps the version, so the wait returns at once and no wake-up is lost.

    Examples:
        >>> notifier = FrameNotifier()
        >>> seen = notifier.version
        >>> notifier.notify()
        >>> notifier.wait(seen, timeout=0.0)
        True
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._version = 0

    @property
    def version(self) -> int:
        with self._condition:
            return self._version

    def notify(self) -> None:
        with self._condition:
            self._version += 1
            self._condition.notify_all()

    def wait(self, seen_version: int, timeout: float | None) -> bool:
        """Wait until the version differs from ``seen_version``; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._version != seen_version, timeout)


class _FrameBuffer(Generic[T]):
    """Shared bookkeeping: a deque under a condition, close/discard, counters."""

    capacity: int

    def __init__(self, capacity: int, notifier: FrameNotifier | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.notifier = notifier
        self._items: deque[T] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._dropped = 0
        self._high_water = 0

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)

    @property
    def closed(self) -> bool:
        with self._condition:
            return self._closed

    @property
    def dropped(self) -> int:
        """Frames thrown away unread (replaced by newer ones, or cleared)."""
        with self._condition:
            return self._dropped

    @property
    def high_water(self) -> int:
        """The most frames the buffer ever held at once; never above ``capacity``."""
        with self._condition:
            return self._high_water

    def get(self, timeout: float | None = None) -> T | None:
        """The next frame, waiting up to ``timeout`` s (None: until one comes or the buffer closes).

        Returns None on timeout, or at once when the buffer is closed and empty.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            item = self._items.popleft()
            self._condition.notify_all()
            return item

    def clear(self) -> int:
        """Drop every held frame (counted as dropped); returns how many."""
        with self._condition:
            count = len(self._items)
            self._items.clear()
            self._dropped += count
            self._condition.notify_all()
            return count

    def close(self) -> None:
        """No more frames will come; the consumer drains what is held, then gets None at once."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._notify()

    def discard(self) -> None:
        """Close and drop what is held: used by ``stop()``."""
        with self._condition:
            self._closed = True
            self._items.clear()
            self._condition.notify_all()
        self._notify()

    def _append_locked(self, item: T) -> None:
        self._items.append(item)
        self._high_water = max(self._high_water, len(self._items))
        self._condition.notify_all()

    def _notify(self) -> None:
        if self.notifier is not None:
            self.notifier.notify()


class FreshestFrameBuffer(_FrameBuffer[T]):
    """One slot for live sources: ``put`` never blocks, a newer frame replaces an unread one.

    Examples:
        >>> buffer = FreshestFrameBuffer()
        >>> buffer.put(1); buffer.put(2)
        True
        True
        >>> buffer.get(timeout=0), buffer.dropped
        (2, 1)
    """

    def __init__(self, notifier: FrameNotifier | None = None) -> None:
        super().__init__(capacity=1, notifier=notifier)

    def put(self, item: T) -> bool:
        """Hold ``item`` as the newest frame; False (and nothing held) once the buffer is closed."""
        with self._condition:
            if self._closed:
                return False
            if self._items:
                self._items.clear()
                self._dropped += 1
            self._append_locked(item)
        self._notify()
        return True


class BlockingFrameBuffer(_FrameBuffer[T]):
    """A few slots for files: ``put`` waits for room, so no frame is ever lost.

    Examples:
        >>> buffer = BlockingFrameBuffer(capacity=2)
        >>> buffer.put("a"), buffer.put("b"), buffer.put("c", timeout=0)
        (True, True, False)
        >>> buffer.get(timeout=0)
        'a'
    """

    def __init__(self, capacity: int = 4, notifier: FrameNotifier | None = None) -> None:
        super().__init__(capacity=capacity, notifier=notifier)

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Append ``item``, waiting up to ``timeout`` s for room.

        Returns False when it timed out or the buffer was closed (``stop()``); the producer then
        checks why and leaves if the source is stopping.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not self._closed and len(self._items) >= self.capacity:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
            if self._closed:
                return False
            self._append_locked(item)
        self._notify()
        return True
