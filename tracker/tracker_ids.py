"""The tracker ids of one video_identifier: the id rule of DESIGN.md, in one place.

A ``tracker_id`` is unique within a video_identifier for its whole life: across reseeds, across
the identifier's session being closed and opened again, and (given a floor and a reservation)
across restarts of the process. The registry keeps one ``TrackerIds`` per identifier for as long
as it lives and hands it to each session it opens, so the highest id is written in exactly one
place and every new id continues above it.

Surviving a restart: whoever stores ids gives the identifier a floor at start (``raise_floor``:
every id it ever emitted is at or below it) and a ``reserve`` callback. Before an id above the
last reservation is handed out, ``reserve(ceiling)`` is called with a new ceiling ``block`` ids
higher; once it returns, ids up to the ceiling may be used. A store that records each ceiling
therefore always holds a value at or above every id emitted, even when the process is killed,
at the cost of one write per ``block`` ids (not one per frame). A clean stop may record the exact
``highest`` instead, so the next run continues right above it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

IdReservation = Callable[[int], None]
"""``reserve(ceiling)``: record that ids up to ``ceiling`` may be emitted; raise to refuse."""

RESERVATION_BLOCK = 64
"""Ids reserved per ``reserve`` call: one store write per this many new tracks."""


class TrackerIds:
    """Allocates ids above the highest one this identifier ever emitted; never reuses one.

    Thread-safe: a session closed while its frame is still inside the model may allocate for
    that frame while the identifier's next session already runs, and both draw from here.

    Examples:
        >>> ids = TrackerIds()
        >>> ids.allocate(), ids.allocate(), ids.highest
        (1, 2, 2)
        >>> ceilings = []
        >>> stored = TrackerIds(highest=40, reserve=ceilings.append, block=10)
        >>> stored.allocate(), ceilings
        (41, [50])
    """

    def __init__(
        self,
        highest: int = 0,
        *,
        reserve: IdReservation | None = None,
        block: int = RESERVATION_BLOCK,
    ) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self._highest = highest
        self._reserve = reserve
        self._block = block
        self._reserved = highest  # ids up to here need no new reservation
        self._lock = threading.Lock()

    @property
    def highest(self) -> int:
        """The largest id handed out so far, or the floor it was given (0 when neither)."""
        return self._highest

    def raise_floor(
        self,
        floor: int,
        *,
        reserve: IdReservation | None = None,
        block: int = RESERVATION_BLOCK,
    ) -> None:
        """Continue above ``floor`` (or above the ids already emitted, whichever is higher).

        ``reserve`` replaces the reservation callback (None: no reservation); the next id
        reserves again, so a new store learns of it before it is emitted.

        Raises:
            ValueError: ``floor`` < 0 or ``block`` < 1.
        """
        if floor < 0:
            raise ValueError(f"floor must be >= 0, got {floor}")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        with self._lock:
            self._highest = max(self._highest, floor)
            self._reserve = reserve
            self._block = block
            self._reserved = self._highest

    def allocate(self) -> int:
        """The next id; reserves a block first when the last reservation is used up.

        Raises:
            Exception: whatever ``reserve`` raised; no id is handed out then.
        """
        with self._lock:
            candidate = self._highest + 1
            if self._reserve is not None and candidate > self._reserved:
                ceiling = self._highest + self._block
                self._reserve(ceiling)
                self._reserved = ceiling
            self._highest = candidate
            return candidate
