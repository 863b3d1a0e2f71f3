"""Take frames from several sources in turn, so that every source gets its share of the model.

A loop that always asked source 0 first would starve the others whenever source 0 is a file (it
always has a frame ready). ``RoundRobinReader`` starts each scan after the source it served last,
polls with ``read(timeout=0)`` so that a dead, paused or slow source costs nothing, and sleeps on
a shared ``FrameNotifier`` when no source has a frame, instead of spinning.

The per-source rate cap (``max_fps``) lives here too, because it is a scheduling rule: a source
served less than ``1 / max_fps`` s ago is skipped. Skipping is all it takes to get the right
behaviour per kind: a file's decoder waits on its full buffer (nothing lost), a live source's
one-slot buffer replaces what it holds (stale frames dropped and counted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pipeline.errors import ConfigError
from pipeline.sources.base import SourceState, VideoSource
from pipeline.video_frame import VideoFrame
from sinks.frame_queue import FrameNotifier

logger = logging.getLogger(__name__)


class RoundRobinReader:
    """Fair reads over several sources, each capped at ``max_fps`` frames per second.

    Create it before starting the sources: it installs its notifier on each of them.

    Args:
        sources: the sources, in pipeline order.
        max_fps: most frames per second served from each source; None for no cap.

    Examples:
        sources = make_sources(["testpattern", "clip.mp4"])
        reader = RoundRobinReader(sources, max_fps=5)
        for source in sources:
            source.start()
        while not reader.exhausted:
            frame = reader.read(timeout=1.0)  # from source 0, then 1, then 0, ...
    """

    def __init__(self, sources: Sequence[VideoSource], *, max_fps: float | None = None) -> None:
        if max_fps is not None and not max_fps > 0:
            raise ConfigError(f"max_fps must be > 0 (or None for no cap), got {max_fps}")
        self.sources = list(sources)
        self.notifier = FrameNotifier()
        for source in self.sources:
            source.set_notifier(self.notifier)
        self._interval = None if max_fps is None else 1.0 / max_fps
        self._due = [0.0] * len(self.sources)  # monotonic time each source may be served again
        self._next = 0

    @property
    def exhausted(self) -> bool:
        """True when no source will ever deliver another frame (all ended, errored or stopped)."""
        return all(source.exhausted for source in self.sources)

    def may_deliver(self, index: int) -> bool:
        """Source ``index`` has frames coming now: it is RUNNING, it ended with frames still
        buffered, or it is a file being opened (which takes milliseconds). A round of frames
        waits for such a source; any other (paused, muted, a camera connecting or reconnecting,
        exhausted) is left out of the round rather than waited for."""
        source = self.sources[index]
        state = source.state
        opening_file = state is SourceState.CONNECTING and not source.is_live
        flowing = state is SourceState.RUNNING or state.is_terminal or opening_file
        return flowing and not source.exhausted

    def read(self, timeout: float | None = None) -> VideoFrame | None:
        """The next frame from the next source in turn that has one and is due.

        Returns None on timeout or once every source is exhausted.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        count = len(self.sources)
        while True:
            seen = self.notifier.version
            now = time.monotonic()
            next_due: float | None = None
            for step in range(count):
                index = (self._next + step) % count
                due = self._due[index]
                if due > now:
                    next_due = due if next_due is None else min(next_due, due)
                    continue
                frame = self.sources[index].read(timeout=0)
                if frame is not None:
                    self._next = index + 1
                    self._served(index, due, now)
                    return frame
            if self.exhausted:
                return None
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            if next_due is not None:
                until_due = max(0.0, next_due - time.monotonic())
                wait = until_due if wait is None else min(wait, until_due)
            self.notifier.wait(seen, wait)

    def _served(self, index: int, due: float, now: float) -> None:
        if self._interval is None:
            return
        # Keep the average at max_fps when the loop is a little late, but never burst to catch
        # up after a long gap (a pause, a reconnect).
        base = due if now - due < self._interval else now
        self._due[index] = base + self._interval
