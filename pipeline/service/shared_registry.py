"""The session registry every stream shares, as the service hands it to pipelines.

See ``InFlightRegistry`` for why the service wraps ``tracker.SessionRegistry`` at all.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tracker import SessionRegistry, SessionStats

logger = logging.getLogger(__name__)

STATS_REFRESH_S = 1.0
"""How often a stream's session stats are re-read after a frame (see ``InFlightRegistry``)."""


class InFlightRegistry:
    """The shared ``SessionRegistry`` as pipelines see it: counts frames in flight, caches stats.

    In flight: a terminated pipeline leaves a frame that is already inside the model to finish on
    its own. If the process exits meanwhile, torch's thread pool is torn down under that thread
    and the C++ runtime aborts the process (exit 134, "terminate called without an active
    exception"); and a session closed meanwhile is pulled from under that frame. So shutdown and
    ``DELETE`` wait here until the stream's frames are out of the model.

    Stats: ``SessionRegistry.stats`` takes the session's lock, which a busy stream's inference
    thread holds for most of every frame and takes again at once: a ``/metrics`` scrape waiting
    for it could wait many frames. So the stats are read on the inference thread right after a
    frame (at most every ``STATS_REFRESH_S``) and scrapes read that copy.
    """

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry
        self._idle = threading.Condition()
        self._in_flight: dict[str, int] = {}
        self._stats: dict[str, tuple[float, SessionStats]] = {}

    @property
    def tracker(self) -> Any:
        return self._registry.tracker

    def process(self, image: Any, *, video_identifier: str, **kwargs: Any) -> Any:
        with self._idle:
            self._in_flight[video_identifier] = self._in_flight.get(video_identifier, 0) + 1
        try:
            detections = self._registry.process(image, video_identifier=video_identifier, **kwargs)
            self._refresh_stats(video_identifier)
            return detections
        finally:
            with self._idle:
                self._in_flight[video_identifier] -= 1
                if not self._in_flight[video_identifier]:
                    del self._in_flight[video_identifier]
                self._idle.notify_all()

    def _refresh_stats(self, video_identifier: str) -> None:
        now = time.monotonic()
        cached = self._stats.get(video_identifier)
        if cached is not None and now - cached[0] < STATS_REFRESH_S:
            return
        try:
            self._stats[video_identifier] = (now, self._registry.stats(video_identifier))
        except KeyError:  # the session was closed (an inference error) or expired
            self._stats.pop(video_identifier, None)

    def cached_stats(self) -> dict[str, SessionStats]:
        """The last stats read of every open session, without waiting for a busy one."""
        open_now = set(self._registry.identifiers())
        return {
            video_identifier: stats
            for video_identifier, (_, stats) in list(self._stats.items())
            if video_identifier in open_now
        }

    def wait_idle(self, timeout: float, video_identifier: str | None = None) -> bool:
        """Block until no frame (of ``video_identifier``, or at all) is inside the model.

        Returns False if ``timeout`` passed first.
        """
        with self._idle:
            if video_identifier is None:
                return self._idle.wait_for(lambda: not self._in_flight, timeout)
            return self._idle.wait_for(lambda: video_identifier not in self._in_flight, timeout)

    def close(self, video_identifier: str) -> None:
        self._registry.close(video_identifier)
        self._stats.pop(video_identifier, None)

    def close_all(self) -> None:
        self._registry.close_all()
        self._stats.clear()

    def reset(self, video_identifier: str) -> None:
        self._registry.reset(video_identifier)

    def identifiers(self) -> list[str]:
        return self._registry.identifiers()

    def stats(self, video_identifier: str) -> Any:
        return self._registry.stats(video_identifier)

    def __len__(self) -> int:
        return len(self._registry)
