"""Take frames from several sources in turn, so that every source gets its share of the model.

A loop that always asked source 0 first would starve the others whenever source 0 is a file (it
always has a frame ready). ``RoundRobinReader`` starts each scan after the source it served last,
polls with ``read(timeout=0)`` so that a dead, paused or slow source costs nothing, and sleeps on
a shared ``FrameNotifier`` when no source has a frame, instead of spinning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pipeline.buffers import FrameNotifier
from pipeline.sources.base import VideoSource
from pipeline.video_frame import VideoFrame

logger = logging.getLogger(__name__)


class RoundRobinReader:
    """Fair reads over several sources.

    Create it before starting the sources: it installs its notifier on each of them.

    Args:
        sources: the sources, in pipeline order.

    Examples:
        sources = make_sources(["testpattern", "clip.mp4"])
        reader = RoundRobinReader(sources)
        for source in sources:
            source.start()
        while not reader.exhausted:
            frame = reader.read(timeout=1.0)  # from source 0, then 1, then 0, ...
    """

    def __init__(self, sources: Sequence[VideoSource]) -> None:
        self.sources = list(sources)
        self.notifier = FrameNotifier()
        for source in self.sources:
            source.set_notifier(self.notifier)
        self._next = 0

    @property
    def exhausted(self) -> bool:
        """True when no source will ever deliver another frame (all ended, errored or stopped)."""
        return all(source.exhausted for source in self.sources)

    def read(self, timeout: float | None = None) -> VideoFrame | None:
        """The next frame from the next source in turn that has one; None on timeout or the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        count = len(self.sources)
        while True:
            seen = self.notifier.version
            for step in range(count):
                index = (self._next + step) % count
                frame = self.sources[index].read(timeout=0)
                if frame is not None:
                    self._next = index + 1
                    return frame
            if self.exhausted:
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self.notifier.wait(seen, remaining)
