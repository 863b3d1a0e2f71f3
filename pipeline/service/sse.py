"""Server-Sent Events fan-out: a bounded buffer per client; slow clients lose old events.

BUFFER POLICY: each subscriber holds at most ``max_events`` serialised events. When a client reads
slower than the stream produces, the oldest unread event is discarded (and counted) to make room:
the client sees recent detections with gaps (visible in the SSE ``id:`` sequence), and the stream
never waits for it. Publishing happens on a sink worker thread; subscribers live on the event loop,
so the hand-over is a lock-protected deque plus ``loop.call_soon_threadsafe`` to wake the reader.

Each frame is serialised once per mask format that at least one subscriber wants, with the JSONL
schema of ``sinks.serialize.frame_record``; RLE masks (the expensive part) are only encoded when a
client asked for ``?masks=rle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import supervision as sv

from pipeline.service.settings import DEFAULT_MAX_EVENTS
from sinks.serialize import MaskFormat, dumps, frame_record

logger = logging.getLogger(__name__)


class EventSubscription:
    """One client's bounded queue of serialised events (see the module's BUFFER POLICY)."""

    def __init__(
        self, mask_format: MaskFormat, loop: asyncio.AbstractEventLoop, max_events: int
    ) -> None:
        self.mask_format = mask_format
        self.dropped = 0
        self._loop = loop
        self._events: deque[tuple[int, str, str]] = deque()
        self._pushed = 0
        self._max_events = max_events
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, kind: str, data: str) -> None:
        """Queue one event (any thread); drops the oldest when full."""
        with self._lock:
            if self._closed:
                return
            if len(self._events) >= self._max_events:
                self._events.popleft()
                self.dropped += 1
            self._pushed += 1
            self._events.append((self._pushed, kind, data))
        self._wake_reader()

    def close(self) -> None:
        """End the subscription (any thread): the reader gets what is queued, then None."""
        with self._lock:
            self._closed = True
        self._wake_reader()

    async def get(self, timeout: float) -> tuple[int, str, str] | None:
        """The next ``(sequence, kind, data)``; None after ``timeout`` or once closed and drained.

        ``sequence`` numbers every event queued for this client, so dropped ones leave a gap.
        """
        while True:
            with self._lock:
                if self._events:
                    return self._events.popleft()
                if self._closed:
                    return None
                self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None

    def _wake_reader(self) -> None:
        # The loop is gone once the server shut down; nobody is left to wake then.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake.set)


class EventHub:
    """The subscribers of one stream, and the publishing side called once per frame.

    Examples:
        >>> hub = EventHub()
        >>> hub.subscriber_count
        0
    """

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.max_events = max_events
        self.events_published = 0
        self._lock = threading.Lock()
        self._subscribers: set[EventSubscription] = set()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def dropped(self) -> int:
        """Events discarded for slow clients that are still connected."""
        with self._lock:
            return sum(subscriber.dropped for subscriber in self._subscribers)

    def subscribe(
        self, mask_format: MaskFormat, loop: asyncio.AbstractEventLoop
    ) -> EventSubscription:
        """Add a client; call from the event loop that will read it."""
        subscription = EventSubscription(mask_format, loop, self.max_events)
        with self._lock:
            if self._closed:
                subscription.close()
            else:
                self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: EventSubscription) -> None:
        subscription.close()
        with self._lock:
            self._subscribers.discard(subscription)

    def publish_frame(self, detections: sv.Detections, frame: Any) -> None:
        """Serialise one frame for every mask format in use and queue it for each client."""
        with self._lock:
            subscribers = list(self._subscribers)
        if not subscribers:
            return
        serialised: dict[str, str] = {}
        for subscriber in subscribers:
            data = serialised.get(subscriber.mask_format)
            if data is None:
                record = frame_record(detections, frame, mask_format=subscriber.mask_format)
                data = serialised[subscriber.mask_format] = dumps(record)
            subscriber.push("detections", data)
        self.events_published += 1

    def publish_status(self, payload: dict[str, Any]) -> None:
        """Queue a status event (source state change, errors) for every client."""
        with self._lock:
            subscribers = list(self._subscribers)
        if subscribers:
            data = dumps(payload)
            for subscriber in subscribers:
                subscriber.push("status", data)

    def close(self) -> None:
        """The stream is gone: end every client's event stream and refuse new ones."""
        with self._lock:
            self._closed = True
            subscribers, self._subscribers = list(self._subscribers), set()
        for subscriber in subscribers:
            subscriber.close()


async def sse_lines(
    subscription: EventSubscription, *, keepalive_s: float = 15.0
) -> AsyncIterator[str]:
    """Yield the SSE wire format for one client until its subscription closes.

    The first line is a comment, so a client knows it is subscribed as soon as headers and that
    line arrive. Detections are unnamed events (a browser's ``EventSource.onmessage`` gets them);
    status changes are ``event: status``; ``event: end`` says the stream was deleted. ``id:``
    numbers the events queued for this client: a gap means the buffer discarded events.
    """
    yield ": subscribed\n\n"
    while True:
        event = await subscription.get(keepalive_s)
        if event is None:
            if subscription.closed:
                yield "event: end\ndata: {}\n\n"
                return
            yield ": keep-alive\n\n"
            continue
        sequence, kind, data = event
        prefix = "" if kind == "detections" else f"event: {kind}\n"
        yield f"{prefix}id: {sequence}\ndata: {data}\n\n"
