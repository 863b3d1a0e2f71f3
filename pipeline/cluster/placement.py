"""Where a new stream goes: the placement rule, in one place.

A stream lives on one worker for its whole life (its tracker session is there); only a failover
moves it. A new (or moved, or waiting) stream goes to the live worker with the fewest streams that
still has room (ties: the first by name), so load spreads evenly and a restarted worker fills up
first. When no live worker has room, there is no place: ``create`` answers 429, a moved stream
waits.

Examples:
    >>> pick_worker({"worker-0": 2, "worker-1": 1}, capacity=2)
    'worker-1'
    >>> pick_worker({"worker-0": 2}, capacity=2) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping


def pick_worker(loads: Mapping[str, int], *, capacity: int) -> str | None:
    """The live worker (name -> streams it runs) that takes the next stream; None when full."""
    candidates = [(load, name) for name, load in loads.items() if load < capacity]
    return min(candidates)[1] if candidates else None
