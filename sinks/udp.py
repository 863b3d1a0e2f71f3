"""One UDP datagram per frame: the record without masks, cut to the objects that fit."""

from __future__ import annotations

import logging
import socket
from datetime import datetime
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

    Fire and forget, for dashboards and PLC gateways on a local network. Roboflow's spelling
    works: ``UDPSink.init(ip_address="127.0.0.1", port=9090)`` and ``on_prediction=
    udp_sink.send_predictions``. Each datagram also carries Roboflow's ``"inference_metadata"``:
    ``source_id``, ``frame_id``, ``frame_decoding_time`` (``frame_timestamp.isoformat()``) and
    ``emission_time`` (the wall clock at sending, in the same convention).

    A record bigger than ``max_datagram_bytes`` keeps only the first objects that fit and gains
    ``"truncated": true`` and ``"objects_total"``; each such frame is counted in ``stats`` as
    truncated. The socket the sink makes is non-blocking (a full send buffer drops the frame,
    counted, instead of waiting) and may send to an IPv4 broadcast address.

    Args:
        ip_address: receiver host name or address (IPv4 or IPv6).
        port: receiver UDP port.
        udp_socket: a socket to send through, used as it is (Roboflow's constructor takes one);
            None makes one.
        host: our older name of ``ip_address``.
        max_datagram_bytes: payload limit; lower it (e.g. 1472) to avoid IP fragmentation.

    Examples:
        >>> udp = UDPSink.init(ip_address="127.0.0.1", port=9090)  # doctest: +SKIP
        >>> pipeline = InferencePipeline.init(..., on_prediction=udp.send_predictions)
        ... # doctest: +SKIP
    """

    def __init__(
        self,
        ip_address: str | None = None,
        port: int | None = None,
        udp_socket: socket.socket | None = None,
        *,
        host: str | None = None,
        max_datagram_bytes: int = MAX_UDP_PAYLOAD,
    ) -> None:
        if (ip_address is None) == (host is None) or port is None:
            raise TypeError("UDPSink needs ip_address= (or its alias host=, not both) and port=")
        target = str(ip_address if ip_address is not None else host)
        super().__init__(f"udp:{target}:{port}")
        if not 0 < int(port) < 65536:
            raise SinkConfigError(f"UDP port {port!r} must be between 1 and 65535")
        family = 0 if udp_socket is None else udp_socket.family
        try:
            found = socket.getaddrinfo(target, int(port), family=family, type=socket.SOCK_DGRAM)
        except socket.gaierror as error:
            raise SinkConfigError(f"cannot resolve UDP sink host {target!r}: {error}") from error
        family, _, _, _, address = found[0]
        self.ip_address = target
        self.port = int(port)
        self.address = address
        self.max_datagram_bytes = max_datagram_bytes
        if udp_socket is None:
            udp_socket = socket.socket(family, socket.SOCK_DGRAM)
            udp_socket.setblocking(False)
            if family == socket.AF_INET:
                # Roboflow's sink may send to 255.255.255.255; without this Linux says EACCES.
                udp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._socket = udp_socket
        self._error_log = LogThrottle()

    @classmethod
    def init(cls, ip_address: str, port: int) -> UDPSink:
        """Create the sink: Roboflow's spelling of the constructor."""
        return cls(ip_address=ip_address, port=port)

    def send_predictions(self, predictions: Any, video_frame: Any) -> None:
        """Send one datagram per frame (a multi-source batch: per non-None frame); Roboflow's name.

        Same as ``on_prediction``.
        """
        self.on_prediction(predictions, video_frame)

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        record = frame_record(detections, frame, mask_format="none")
        record["inference_metadata"] = inference_metadata(frame)
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


def inference_metadata(frame: Any) -> dict[str, Any]:
    """Roboflow's ``inference_metadata`` of one frame: ids, decoding time, emission time.

    ``emission_time`` follows ``frame_timestamp``'s convention (naive local time when it is naive,
    as Roboflow's), so the two can be subtracted.
    """
    timestamp = frame.frame_timestamp
    return {
        "source_id": frame.source_id,
        "frame_id": frame.frame_id,
        "frame_decoding_time": timestamp.isoformat(),
        "emission_time": datetime.now(timestamp.tzinfo).isoformat(),
    }
