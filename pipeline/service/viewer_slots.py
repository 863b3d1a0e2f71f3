"""``ViewerSlots``: how many WebRTC viewers one server takes, per stream and in all.

An SDP offer costs a peer connection (UDP sockets, an ICE agent, a DTLS context) before anyone
knows whether it will ever connect, and a connected viewer costs a video encode per frame. Issue
12 saw offers that never connected pile up (260 viewers, 530 file descriptors in 2.5 minutes).
So every offer claims a slot before its peer connection exists, over a cap it is answered 429
naming the cap, and the slot is given back when the peer is dropped: closed, failed, or not
connected within ``ViewerSettings.connect_timeout_s`` (``WebRTCPublisher`` enforces that).

Examples:
    >>> slots = ViewerSlots(ViewerSettings(max_per_stream=1, max_total=2))
    >>> slots.claim(stream_viewers=0)
    >>> slots.in_use
    1
    >>> slots.release()
    >>> slots.in_use
    0
"""

from __future__ import annotations

import threading

from pipeline.errors import ConfigError
from pipeline.service.api_errors import ServiceError
from pipeline.service.settings import ViewerSettings


class ViewerLimitError(ServiceError):
    """A WebRTC offer over the per-stream or the server's viewer cap (429)."""

    status_code = 429


class ViewerSlots:
    """The server's viewer count against its caps; shared by every stream's publisher.

    Thread-safe: offers are answered on the event loop, but streams are deleted from the
    threadpool.

    Args:
        settings: the caps and the connect timeout.

    Raises:
        ConfigError: a cap below 1 or a timeout that is not positive.
    """

    def __init__(self, settings: ViewerSettings | None = None) -> None:
        self.settings = settings or ViewerSettings()
        if self.settings.max_per_stream < 1:
            raise ConfigError(
                f"max_viewers_per_stream must be >= 1, got {self.settings.max_per_stream}",
                field="max_viewers_per_stream",
            )
        if self.settings.max_total < 1:
            raise ConfigError(
                f"max_viewers must be >= 1, got {self.settings.max_total}", field="max_viewers"
            )
        if not self.settings.connect_timeout_s > 0:
            raise ConfigError(
                f"viewer connect timeout must be > 0 s, got {self.settings.connect_timeout_s}",
                field="viewer_connect_timeout_s",
            )
        self._lock = threading.Lock()
        self._in_use = 0

    @property
    def in_use(self) -> int:
        """Viewers of every stream, connecting or connected."""
        with self._lock:
            return self._in_use

    def claim(self, stream_viewers: int) -> None:
        """Take a slot for one more viewer of a stream that has ``stream_viewers`` already.

        Raises:
            ViewerLimitError: the stream or the server is at its cap (nothing is taken).
        """
        settings = self.settings
        if stream_viewers >= settings.max_per_stream:
            raise ViewerLimitError(
                f"this stream has {stream_viewers} viewers, the most --max-viewers-per-stream "
                f"({settings.max_per_stream}) allows: close a viewer or raise the limit"
            )
        with self._lock:
            if self._in_use >= settings.max_total:
                raise ViewerLimitError(
                    f"this server has {self._in_use} viewers, the most --max-viewers "
                    f"({settings.max_total}) allows: close a viewer or raise the limit"
                )
            self._in_use += 1

    def release(self) -> None:
        """Give back a slot taken by ``claim`` (once per claim)."""
        with self._lock:
            self._in_use = max(0, self._in_use - 1)
