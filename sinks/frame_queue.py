"""The one bounded queue between every producer and consumer of frames, with the one drop policy.

A frame on its way to a ``MultiSink`` passes three of these: the source's buffer (decode thread ->
inference loop), the dispatch queue (inference loop -> ``on_prediction``) and each sink's worker
queue (``MultiSink`` -> one sink). They all follow one rule, written here:

- an item from a **live** source never waits: when the queue is full the oldest queued *live* item
  is dropped (and counted) to make room, so what comes out stays recent however slow the
  consumer is, and latency stays bounded;
- an item from a **file** waits for room: every frame of a file comes out, in order, at the
  consumer's pace. A live item is never let in at the expense of a file item: when only file
  items are queued, the live newcomer is the one dropped.

What is live is the queue owner's call (``is_live``): a source knows what it is, a sink only
sees ``comes_from_video_file`` on the frame.

The queue lives in ``sinks`` because ``sinks`` must not import ``pipeline`` while ``pipeline``
imports ``sinks``: this is the lowest package that needs it.

Lifecycle: ``close()`` says no more items will come (the consumer drains what is held, then gets
None at once); ``stop()`` also throws away what is held and wakes everybody. A ``FrameNotifier``
shared by several queues lets one consumer sleep until any of them has an item.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameNotifier:
    """Wakes one consumer that polls several queues when any of them receives an item.

    Take ``version`` *before* polling, then ``wait(version, timeout)``: an item that arrives while
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


class FrameQueue(Generic[T]):
    """A bounded FIFO with the live-drops-oldest / file-waits policy of the module docstring.

    Args:
        capacity: most items held at once (>= 1). One slot for a live source means "always the
            freshest frame".
        is_live: whether an item may be dropped (live) or must wait for room (file).
        notifier: poked whenever an item lands and when the queue closes.

    Examples:
        >>> live = FrameQueue(capacity=1, is_live=lambda item: True)
        >>> live.put(1), live.put(2)  # the second replaces the first, which is handed back
        (None, 1)
        >>> live.get(timeout=0), live.dropped
        (2, 1)
        >>> files = FrameQueue(capacity=1, is_live=lambda item: False)
        >>> files.put("a"), files.put("b", timeout=0)  # "b" waited for room in vain
        (None, 'b')
    """

    def __init__(
        self,
        capacity: int,
        *,
        is_live: Callable[[T], bool],
        notifier: FrameNotifier | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.notifier = notifier
        self._is_live = is_live
        self._items: deque[tuple[T, bool]] = deque()  # (item, live)
        # Re-entrant: a signal handler may stop the queue on a thread that is inside get().
        self._condition = threading.Condition(threading.RLock())
        self._closed = False
        self._dropped = 0
        self._high_water = 0
        self._in_flight = 0

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)

    @property
    def closed(self) -> bool:
        with self._condition:
            return self._closed

    @property
    def finished(self) -> bool:
        """Nothing more will come out: closed (or stopped) and drained."""
        with self._condition:
            return self._closed and not self._items

    @property
    def dropped(self) -> int:
        """Items the policy threw away unread (live items making room) plus those ``clear``ed."""
        with self._condition:
            return self._dropped

    @property
    def high_water(self) -> int:
        """The most items the queue ever held at once; never above ``capacity``."""
        with self._condition:
            return self._high_water

    def put(self, item: T, timeout: float | None = None) -> T | None:
        """Queue ``item`` under the policy; returns the item that did not make it, if any.

        That is the oldest live item dropped to make room, or ``item`` itself when it was refused:
        the queue is closed, a file item waited ``timeout`` s (None: for ever) for room in vain,
        or a live item met a queue full of file items. None when nothing was lost.
        """
        live = self._is_live(item)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            if not live:
                while not self._closed and len(self._items) >= self.capacity:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return item
                    self._condition.wait(remaining)
            if self._closed:
                return item
            lost = None
            if len(self._items) >= self.capacity:
                lost = self._drop_oldest_live_locked()
                self._dropped += 1
                if lost is None:
                    return item
            self._items.append((item, live))
            self._high_water = max(self._high_water, len(self._items))
            self._condition.notify_all()
        self._notify()
        return lost

    def get(self, timeout: float | None = None) -> T | None:
        """The next item, waiting up to ``timeout`` s (None: until one comes or the queue closes).

        Returns None on timeout, or at once when the queue is closed and empty. Every item taken
        counts as in flight until ``task_done()`` (only ``join()`` cares).
        """
        with self._condition:
            if not self._condition.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            item, _ = self._items.popleft()
            self._in_flight += 1
            self._condition.notify_all()
            return item

    def task_done(self) -> None:
        """The consumer has finished with an item from ``get()``."""
        with self._condition:
            self._in_flight -= 1
            self._condition.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty and every item taken is done; False on timeout."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._items and not self._in_flight, timeout
            )

    def clear(self) -> int:
        """Drop every held item (counted as dropped); returns how many."""
        with self._condition:
            count = len(self._items)
            self._items.clear()
            self._dropped += count
            self._condition.notify_all()
            return count

    def close(self) -> None:
        """No more items will come; the consumer drains what is held, then gets None at once."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._notify()

    def stop(self) -> int:
        """Close, throw away what is held and wake everybody; returns how many items were held.

        Not counted in ``dropped``: the owner is shutting down and counts them as it sees fit.
        """
        with self._condition:
            self._closed = True
            count = len(self._items)
            self._items.clear()
            self._condition.notify_all()
        self._notify()
        return count

    def _drop_oldest_live_locked(self) -> T | None:
        for index, (queued, live) in enumerate(self._items):
            if live:
                del self._items[index]
                return queued
        return None

    def _notify(self) -> None:
        if self.notifier is not None:
            self.notifier.notify()
