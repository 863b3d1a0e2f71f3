"""The tracker ids of one video_identifier: the id rule of DESIGN.md, in one place.

A ``tracker_id`` is unique within a video_identifier for its whole life: across reseeds, and
across the identifier's session being closed and opened again. The registry keeps one
``TrackerIds`` per identifier for as long as it lives and hands it to each session it opens, so
the highest id is written in exactly one place and every new id continues above it.
"""

from __future__ import annotations

import threading


class TrackerIds:
    """Allocates ids above the highest one this identifier ever emitted; never reuses one.

    Thread-safe: a session closed while its frame is still inside the model may allocate for
    that frame while the identifier's next session already runs, and both draw from here.

    Examples:
        >>> ids = TrackerIds()
        >>> ids.allocate(), ids.allocate(), ids.highest
        (1, 2, 2)
    """

    def __init__(self, highest: int = 0) -> None:
        self._highest = highest
        self._lock = threading.Lock()

    @property
    def highest(self) -> int:
        """The largest id handed out so far (0 when none yet)."""
        return self._highest

    def allocate(self) -> int:
        with self._lock:
            self._highest += 1
            return self._highest
