"""One log line per interval for a failure that repeats every frame."""

from __future__ import annotations

import threading
import time


class LogThrottle:
    """Lets one message through per interval, so a failure on every frame cannot flood the log.

    A camera runs for weeks; a webhook that is down for a day, or a model that fails on every
    frame, must not write a million warnings. Used by the sinks and by the inference loop.

    Examples:
        >>> throttle = LogThrottle(interval_s=60.0)
        >>> throttle.allow(), throttle.allow(), throttle.allow()
        (0, None, None)
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._next_allowed = 0.0
        self._suppressed = 0

    def allow(self) -> int | None:
        """Return how many messages were suppressed since the last one, or None to stay quiet."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_allowed:
                self._suppressed += 1
                return None
            self._next_allowed = now + self._interval_s
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed
