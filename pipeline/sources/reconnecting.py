"""The one connect / read / reconnect loop of every live source that holds a connection.

Network streams (PyAV) and webcams (OpenCV) differ only in how they open, read and close; the
state machine around that is written here, once:

- connect; on failure record it and back off (capped exponential backoff with jitter, see
  ``backoff.py``); give up with ERROR only after ``max_reconnect_attempts`` failures in a row;
- once connected, start an epoch (a reconnect bumps it so the tracker reseeds), read until the
  connection ends, errors, stalls or the user pauses, then close it;
- a connection that delivered frames is retried at once (the backoff only starts when that
  fails); one that delivered nothing counts as a failed attempt.

States, the same for every kind: the link reads CONNECTING until a connection has ever delivered
a frame (a camera down at start), RECONNECTING once one did and was lost (a camera that dropped),
RUNNING while frames flow (set by ``_publish_frame``). While PAUSED the connection is closed and
the loop waits; on ``resume()`` it reconnects with the next epoch. A pause releases the camera
however short it is: one resumed before the decode loop looked still ends the connection.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Generic, TypeVar

from pipeline.sources.base import SourceState, VideoSource

logger = logging.getLogger(__name__)

ConnectionT = TypeVar("ConnectionT")


class ReconnectingSource(VideoSource, Generic[ConnectionT]):
    """A live source that keeps reconnecting; subclasses supply open, read and close.

    Subclasses implement:

    - ``_connect()``: one attempt; the open connection, or None with the failure recorded
      (``_record_failure(..., connect=True)``) and logged.
    - ``_pump(connection)``: publish frames until the connection ends or ``_must_release`` says
      so (paused since it connected, or stopping); returns (delivered any frame, why it ended).
    - ``_disconnect(connection)``: release it; must not raise on a dead connection.
    """

    @abstractmethod
    def _connect(self) -> ConnectionT | None:
        """One connection attempt; None (and the failure recorded) when it failed."""

    @abstractmethod
    def _pump(self, connection: ConnectionT) -> tuple[bool, str]:
        """Read one connection until it ends; returns (delivered any frame, why it ended)."""

    @abstractmethod
    def _disconnect(self, connection: ConnectionT) -> None:
        """Release the connection (quietly: it may already be dead)."""

    @property
    def _must_release(self) -> bool:
        """Stopping, or paused since this connection opened (even if resumed already)."""
        with self._lock:
            return self._stopping or self._pauses != self._pauses_at_connect

    def _run(self) -> None:
        self._pauses_at_connect = 0
        backoff = self.options.make_backoff()
        connected_before = False
        ever_ran = False
        failures_in_a_row = 0
        while not self._stopping:
            if self._wait_while_paused():
                return
            with self._lock:
                self._pauses_at_connect = self._pauses
            connection = self._connect()
            if self._stopping:  # stop() gave up waiting for this attempt: leave without a trace
                if connection is not None:
                    self._disconnect(connection)
                return
            got_frames = False
            if connection is not None:
                self._begin_epoch(reconnect=connected_before)
                connected_before = True
                try:
                    got_frames, reason = self._pump(connection)
                finally:
                    self._disconnect(connection)
                ever_ran = ever_ran or got_frames
                if self._stopping:
                    return
                # Also when paused: the state reads PAUSED now and RECONNECTING on resume.
                link = SourceState.RECONNECTING if ever_ran else SourceState.CONNECTING
                self._set_link(link, reason)
            if got_frames:
                # It worked a moment ago: try again at once, back off only if that fails.
                backoff.reset()
                failures_in_a_row = 0
                continue
            if self._paused or self._pauses != self._pauses_at_connect:
                continue  # a pause ended it, not a fault: no backoff
            failures_in_a_row += 1
            if self._gives_up(failures_in_a_row):
                return
            delay = backoff.next_delay()
            logger.info("%s: next attempt in %.2f s", self.reference, delay)
            if self._sleep(delay):
                return

    def _gives_up(self, failures_in_a_row: int) -> bool:
        """True, with the state set to ERROR, once ``max_reconnect_attempts`` is exceeded."""
        limit = self.options.max_reconnect_attempts
        if limit is not None and failures_in_a_row > limit:
            self._set_link(SourceState.ERROR, f"gave up after {failures_in_a_row} failed attempts")
            return True
        return False
