"""The tracker-id grant protocol: every id a worker emits is below a ceiling the front door kept.

The id rule (DESIGN.md) says an id is never reused, even across a failover. A worker can die
between emitting an id (to a webhook, a file) and the front door seeing it, so the front door
cannot learn the highest id from results. Instead the worker's registry reserves ids in blocks
(``tracker.tracker_ids.RESERVATION_BLOCK``): its ``reserve(ceiling)`` callback is a ``GrantGate``
that blocks the inference thread until the front door recorded ``ceiling`` (``IdLedger.grant``:
the store when there is one, memory otherwise) and said so on its next poll. So whatever id the
worker emitted is at or below a ceiling that survives the worker, and a failover continues above
it. It costs one round trip per block of new tracks, not per frame.

Requests and grants ride on the poll calls the front door makes anyway: no extra RPC.

Examples:
    >>> ledger = IdLedger(history=None)
    >>> ledger.grant("dock", 64), ledger.floor("dock")
    (64, 64)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.service.run_history import RunHistory

logger = logging.getLogger(__name__)

GRANT_WAIT_S = 1.0
"""How often a waiting reservation wakes to see whether its stream was stopped meanwhile."""


class GrantRefused(RuntimeError):
    """The stream stopped while its frame waited for ids: the frame is dropped, no id used."""


class GrantGate:
    """The worker side: ``reserve`` callbacks that wait for the front door's grant.

    Thread-safe; ``wake`` is the worker's poll condition, notified when a request is made so a
    waiting poll returns it at once.
    """

    def __init__(self, wake: threading.Condition) -> None:
        self._wake = wake
        self._requested: dict[str, int] = {}
        self._granted: dict[str, int] = {}
        self._closed: set[str] = set()

    def reserve_for(self, video_identifier: str) -> ReserveCallback:
        """The ``reserve`` callback of one identifier (``SessionRegistry.set_id_floor``)."""
        with self._wake:
            self._closed.discard(video_identifier)
        return ReserveCallback(self, video_identifier)

    def wait_for(self, video_identifier: str, ceiling: int) -> None:
        """Block until ids up to ``ceiling`` are granted.

        Raises:
            GrantRefused: the identifier's stream was stopped while waiting.
        """
        with self._wake:
            if self._granted.get(video_identifier, 0) >= ceiling:
                return
            self._requested[video_identifier] = max(
                ceiling, self._requested.get(video_identifier, 0)
            )
            self._wake.notify_all()
            while self._granted.get(video_identifier, 0) < ceiling:
                if video_identifier in self._closed:
                    raise GrantRefused(f"{video_identifier}: stopped while waiting for ids")
                self._wake.wait(GRANT_WAIT_S)

    def pending(self) -> dict[str, int]:
        """Requests not granted yet (call with the condition held, or accept a stale view)."""
        return {
            name: ceiling
            for name, ceiling in self._requested.items()
            if self._granted.get(name, 0) < ceiling
        }

    def apply(self, grants: Mapping[str, int]) -> None:
        """Record the front door's grants and wake the frames waiting for them."""
        if not grants:
            return
        with self._wake:
            for name, ceiling in grants.items():
                self._granted[name] = max(ceiling, self._granted.get(name, 0))
            self._wake.notify_all()

    def close(self, video_identifier: str) -> None:
        """The identifier's stream stops: refuse its waiting reservation, forget its grants."""
        with self._wake:
            self._closed.add(video_identifier)
            self._requested.pop(video_identifier, None)
            self._granted.pop(video_identifier, None)
            self._wake.notify_all()


class ReserveCallback:
    """``reserve(ceiling)`` for one identifier (a class, so Ray never needs to pickle it)."""

    def __init__(self, gate: GrantGate, video_identifier: str) -> None:
        self._gate = gate
        self._video_identifier = video_identifier

    def __call__(self, ceiling: int) -> None:
        self._gate.wait_for(self._video_identifier, ceiling)


class IdLedger:
    """The front door side: the ceiling of every identifier, recorded before it is granted.

    With a store the ceilings live in ``RunHistory``'s store (they survive the front door too);
    without one they live here for the life of the process, which still covers failover.
    """

    def __init__(self, history: RunHistory | None) -> None:
        self._history = history
        self._ceilings: dict[str, int] = {}
        self._lock = threading.Lock()

    def floor(self, video_identifier: str) -> int:
        """Every id the identifier ever emitted (anywhere in the cluster) is at or below this."""
        stored = 0
        if self._history is not None:
            stored = self._history.of(video_identifier).tracker_id_ceiling
        with self._lock:
            return max(stored, self._ceilings.get(video_identifier, 0))

    def grant(self, video_identifier: str, ceiling: int) -> int:
        """Record ``ceiling`` where it survives, then return it (the grant to send).

        A failed store write is logged and the grant still given, as ``RunHistory`` does for a
        single process: one broken disk must not stop every stream.
        """
        store = self._history.store if self._history is not None else None
        if store is not None:
            try:
                store.record_tracker_ids(video_identifier, ceiling)
            except Exception as error:
                logger.error("cannot record tracker ids of %s: %s", video_identifier, error)
        with self._lock:
            self._ceilings[video_identifier] = max(ceiling, self._ceilings.get(video_identifier, 0))
        return ceiling

    def settle(self, video_identifier: str, highest: int) -> None:
        """After a clean stop on its worker: ``highest`` is exactly the largest id emitted."""
        store = self._history.store if self._history is not None else None
        if store is not None and highest > 0:
            try:
                store.settle_tracker_ids(video_identifier, highest)
            except Exception as error:
                logger.error("cannot record the ids of %s: %s", video_identifier, error)
        with self._lock:
            self._ceilings[video_identifier] = highest
