"""Log a failure that repeats every frame once, not once a frame.

``KeyedLogThrottle`` is the one implementation: each distinct error (its key) is logged the first
time with its traceback, then at most once per interval as a one-line summary with the count of
repeats it stood for. ``LogThrottle`` is the same rule for a single key.

Contract for callers (the dispatcher, sink workers, ``multi_sink``, the inference loop)::

    throttle = KeyedLogThrottle()
    throttle.log(logger, logging.ERROR, (sink, type(error).__name__, message),
                 "on_prediction %s raised %s: %s", sink, type(error).__name__, message,
                 exc_info=error)

or, to format the line yourself, ``suppressed = throttle.allow(key)``: ``None`` means stay quiet,
an int is the number of occurrences suppressed since that key last logged (``0`` the first time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

DEFAULT_INTERVAL_S = 60.0
"""Seconds between two lines for the same key: a webhook down for a day writes 1,440, not 10^6."""

DEFAULT_MAX_KEYS = 256
"""Distinct keys remembered (least recently seen forgotten first), so memory stays bounded."""

DEFAULT_MAX_NEW_KEYS = 20
"""New keys logged per interval; a message carrying a frame number is a new key every frame."""


class KeyedLogThrottle:
    """Lets each distinct message through once, then once per interval, with a bounded memory.

    A camera runs for weeks: a sink that raises on every frame, or a model that fails on every
    frame, must not write a million tracebacks, yet the first occurrence of every *different*
    error must be seen with its traceback. Keys are whatever identifies "the same error" to the
    caller, e.g. ``(sink_name, type(error).__name__, str(error))``.

    Thread-safe: sink workers and the inference thread share one throttle.

    Args:
        interval_s: seconds between two lines for one key.
        max_keys: distinct keys remembered; the least recently seen is forgotten first.
        max_new_keys: new keys let through per interval, over all keys; the rest are counted and
            reported on the next line that gets through.

    Examples:
        >>> throttle = KeyedLogThrottle(interval_s=60.0)
        >>> throttle.allow("a"), throttle.allow("a"), throttle.allow("b"), throttle.allow("a")
        (0, None, 0, None)
    """

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_new_keys: int = DEFAULT_MAX_NEW_KEYS,
    ) -> None:
        if max_keys < 1 or max_new_keys < 1:
            raise ValueError("max_keys and max_new_keys must be at least 1")
        self._interval_s = interval_s
        self._max_keys = max_keys
        self._max_new_keys = max_new_keys
        self._lock = threading.Lock()
        # key -> [next time it may log, occurrences suppressed since it last logged]
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()
        self._window_ends = 0.0
        self._new_in_window = 0
        self._overflow = 0  # new keys refused by the max_new_keys cap, not yet reported

    def allow(self, key: Hashable) -> int | None:
        """Return the count suppressed since ``key`` last logged (0 the first time), or None."""
        admitted = self._admit(key)
        return None if admitted is None else admitted[1]

    def _admit(self, key: Hashable) -> tuple[bool, int] | None:
        """``(first time, suppressed count)`` if ``key`` may log now, else None."""
        now = time.monotonic()
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None:
                self._keys.move_to_end(key)
                if now < entry[0]:
                    entry[1] += 1
                    return None
                suppressed = int(entry[1])
                entry[0], entry[1] = now + self._interval_s, 0
                return False, suppressed
            if now >= self._window_ends:
                self._window_ends, self._new_in_window = now + self._interval_s, 0
            if self._new_in_window >= self._max_new_keys:
                # Not remembered: once the window passes, this key logs as a first occurrence.
                self._overflow += 1
                return None
            self._new_in_window += 1
            self._keys[key] = [now + self._interval_s, 0]
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
            return True, 0

    def take_overflow(self) -> int:
        """Return, and reset, how many new keys the ``max_new_keys`` cap kept quiet."""
        with self._lock:
            overflow, self._overflow = self._overflow, 0
            return overflow

    def log(
        self,
        log: logging.Logger,
        level: int,
        key: Hashable,
        msg: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log ``msg % args`` under ``key``'s throttle; True if a line was written.

        The first line for a key carries ``exc_info`` (the traceback); later ones are a single
        line that says how many occurrences it stands for, since that traceback was already shown
        (until the key is forgotten: see ``max_keys``).
        """
        admitted = self._admit(key)
        if admitted is None:
            return False
        first, suppressed = admitted
        overflow = self.take_overflow()
        if overflow:
            log.log(
                level, "%d other distinct error(s) were not logged (too many at once)", overflow
            )
        if first:
            log.log(level, msg, *args, exc_info=exc_info)
        else:
            suffix = " (again, %d more time(s) not logged; traceback logged before)"
            log.log(level, msg + suffix, *args, suppressed)
        return True


class LogThrottle:
    """``KeyedLogThrottle`` for a single message: one line per interval.

    Examples:
        >>> throttle = LogThrottle(interval_s=60.0)
        >>> throttle.allow(), throttle.allow(), throttle.allow()
        (0, None, None)
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._keyed = KeyedLogThrottle(interval_s=interval_s, max_keys=1, max_new_keys=1)

    def allow(self) -> int | None:
        """Return how many messages were suppressed since the last one, or None to stay quiet."""
        return self._keyed.allow(None)
