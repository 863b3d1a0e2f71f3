"""One UDP datagram per frame: the record without masks, cut to the objects that fit."""

from __future__ import annotations

import logging
import socket
from typing import Any

import supervision as sv

from sinks.base import Sink
from sinks.errors import SinkConfigError
from sinks.log_throttle import LogThrottle
from sinks.serialize import dumps, frame_record

logger = logging.getLogger(__name__)

MAX_UDP_PAYLOAD = 65_507
"""The largest payload an IPv4 UDP datagram can carry (65,535 - 8 UDP - 20 IP header bytes)."""


class UDPSink(Sink):
    """Sends each frame's record (schema: ``sinks.serialize``, ``mask`` null) as one datagram.

    Fire and forget, for dashboards and PLC gateways on a local network. A record bigger than
    ``max_datagram_bytes`` keeps only the first objects that fit and gains ``"truncated": true`` and
    ``"objects_total"``; each such frame is counted in ``stats`` as truncated. The socket is
    non-blocking: a full send buffer drops the frame (counted) instead of waiting.

    Args:
        host: receiver host name or address (IPv4 or IPv6).
        port: receiver UDP port.
        max_datagram_bytes: payload limit; lower it (e.g. 1472) to avoid IP fragmentation.
    """

    def __init__(self, host: str, port: int, *, max_datagram_bytes: int = MAX_UDP_PAYLOAD) -> None:
        super().__init__(f"udp:{host}:{port}")
        if not 0 < int(port) < 65536:
            raise SinkConfigError(f"UDP port {port!r} must be between 1 and 65535")
        try:
            family, _, _, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[
                0
            ]
        except socket.gaierror as error:
            raise SinkConfigError(f"cannot resolve UDP sink host {host!r}: {error}") from error
        self.address = address
        self.max_datagram_bytes = max_datagram_bytes
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._error_log = LogThrottle()

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        record = frame_record(detections, frame, mask_format="none")
        payload = dumps(record).encode()
        if len(payload) > self.max_datagram_bytes:
            payload = self._truncated(record)
            self.stats.add(truncated=1)
            if not payload:  # not even the frame's metadata fits: nothing useful to send
                self.stats.add(dropped=1)
                return
        try:
            self._socket.sendto(payload, self.address)
        except BlockingIOError:
            self.stats.add(dropped=1)
            return
        except OSError as error:
            self.stats.add(dropped=1)
            suppressed = self._error_log.allow()
            if suppressed is not None:
                logger.warning(
                    "%s: send failed: %s (%d similar suppressed)", self.name, error, suppressed
                )
            self._report_error(error)
            return
        self.stats.add(frames_written=1)

    def _truncated(self, record: dict[str, Any]) -> bytes:
        objects = record["objects"]
        # Binary search for the most leading objects whose record still fits.
        low, high = 0, len(objects)
        best = b""
        while low <= high:
            middle = (low + high) // 2
            candidate = dumps(
                {
                    **record,
                    "objects": objects[:middle],
                    "truncated": True,
                    "objects_total": len(objects),
                }
            ).encode()
            if len(candidate) <= self.max_datagram_bytes:
                best, low = candidate, middle + 1
            else:
                high = middle - 1
        return best

    def _close(self) -> None:
        self._socket.close()
