"""Network streams (RTSP, RTSPS, RTMP, HTTP(S) incl. HLS): freshest frame, watchdog, reconnect.

The connect / read / reconnect loop is ``ReconnectingSource``'s; this module supplies one
connection: open with FFmpeg's own timeouts, decode until the stream ends, errors or stalls, close.
Why each piece:

- ``av.open(..., timeout=(open_s, read_s))``: PyAV's interrupt callback is the only timeout that
  works on every protocol (FFmpeg's ``stimeout`` is silently ignored since FFmpeg 5). The read
  timeout is the stall timeout, so a camera frozen with its TCP connection open (SIGSTOP, a hung
  encoder) is caught inside ``av_read_frame`` instead of blocking forever.
- The no-frame watchdog also catches a stream that still sends packets but no decodable video.
- RTSP over TCP by default: UDP loses packets on busy links and smears the picture.
- A short probe for RTSP (its SDP already names every track, codec and size): a reconnect delivers
  its first frame in a fraction of a second instead of FFmpeg's default ~2 s of analysis. Not
  ``fflags=nobuffer``: it throws away the probed packets, first keyframe included, so the first
  frame waits a whole GOP (seconds on real cameras); the short burst of probed frames costs
  nothing, the freshest-frame buffer skips it.
- Slice threading only: frame threading adds a frame of delay per decoder thread.
- Every successful reconnect bumps ``epoch`` so the tracker reseeds; the new connection may have
  a different resolution, which needs no special handling because every frame carries its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import av

from pipeline.redact import redact
from pipeline.sources.reconnecting import ReconnectingSource

logger = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")

# Values in microseconds / bytes, as FFmpeg wants them.
_LOW_LATENCY_OPTIONS = {
    "max_delay": "500000",  # reordering the demuxer may hold back
    # RTMP and HLS discover tracks from the data itself, so they keep a probe long enough to
    # see a video packet.
    "analyzeduration": "1000000",
    "probesize": "1000000",
}
_RTSP_OPTIONS = {"analyzeduration": "200000", "probesize": "100000"}


class _Stalled(Exception):
    """No decoded frame for ``stall_timeout_s`` although the connection is up."""


class LiveStreamSource(ReconnectingSource[av.container.InputContainer]):
    """A network video stream that reconnects forever and always serves its freshest frame.

    A camera that is down at start keeps being retried in the background (CONNECTING); one that
    drops later is retried too (RECONNECTING), with capped exponential backoff and jitter. Only
    ``max_reconnect_attempts`` failures in a row end in ERROR.

    Args:
        url: ``rtsp://``, ``rtsps://``, ``rtmp://``, ``rtmps://``, ``http://`` or ``https://``;
            credentials in it are used to connect and redacted everywhere else.
        **kwargs: see ``VideoSource``.

    Examples:
        source = LiveStreamSource("rtsp://user:pw@cam.local/stream1")
        source.start()
        frame = source.read(timeout=5.0)  # newest frame, or None while (re)connecting
        source.stop()
    """

    kind = "stream"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._url = url

    def _container_options(self) -> dict[str, str]:
        options = dict(_LOW_LATENCY_OPTIONS)
        if self._url.lower().startswith(("rtsp://", "rtsps://")):
            options.update(_RTSP_OPTIONS, rtsp_transport=self.options.rtsp_transport)
        options.update(self.options.av_options)
        return options

    def _connect(self) -> av.container.InputContainer | None:
        """One connection attempt; None (and the error recorded) when it failed."""
        started = time.monotonic()
        try:
            container = av.open(
                self._url,
                container_options=self._container_options(),
                timeout=(self.options.open_timeout_s, self.options.stall_timeout_s),
            )
        except (av.FFmpegError, OSError) as error:
            if self._stopping:
                return None
            message = _describe_open_error(
                error, time.monotonic() - started, self.options.open_timeout_s
            )
            self._record_failure(message, connect=True)
            logger.warning("%s: %s", self.reference, redact(message))
            return None
        if not container.streams.video:
            container.close()
            self._record_failure("the stream has no video track", connect=True)
            logger.warning("%s: the stream has no video track", self.reference)
            return None
        return container

    def _pump(self, container: av.container.InputContainer) -> tuple[bool, str]:
        """Decode one connection until it ends; returns (delivered any frame, why it ended)."""
        got_frames = False
        try:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = self.options.decoder_threads
            stream.codec_context.flags |= av.codec.context.Flags.low_delay
            self._set_declared_fps(float(stream.average_rate or stream.guessed_rate or 0.0))
            last_frame_at = time.monotonic()
            # Demux every track, not just video: the watchdog must also run when only audio
            # packets keep arriving from a camera whose video encoder hung.
            for packet in container.demux():
                if self._must_release:
                    return got_frames, "stopped" if self._stopping else "paused"
                if time.monotonic() - last_frame_at > self.options.stall_timeout_s:
                    raise _Stalled
                if packet.stream.index != stream.index:
                    continue
                started_decoding = time.perf_counter()
                try:
                    frames = stream.decode(packet)
                except av.error.InvalidDataError as error:
                    # Typical right after (re)connecting mid-GOP; the next keyframe fixes it.
                    self._record_decode_error(f"skipped a corrupt packet ({error})")
                    frames = []
                for av_frame in frames:
                    last_frame_at = time.monotonic()
                    frame_id = self._count_decoded()
                    if frame_id is None:
                        continue
                    image = av_frame.to_ndarray(format="bgr24")  # (H, W, 3) uint8 BGR
                    decode_s = time.perf_counter() - started_decoding
                    started_decoding = time.perf_counter()
                    got_frames = True
                    if not self._publish_frame(image, frame_id, decode_s=decode_s):
                        return got_frames, "stopped"
            return got_frames, "the stream ended"
        except (_Stalled, av.error.ExitError):
            reason = f"no frame for {self.options.stall_timeout_s:g} s (stream stalled)"
        except (av.FFmpegError, OSError) as error:
            reason = f"connection lost: {error}"
        self._record_failure(reason)
        return got_frames, redact(reason)

    def _disconnect(self, container: av.container.InputContainer) -> None:
        """Closing sends an RTSP TEARDOWN; on a dead connection that may fail, which is fine."""
        try:
            container.close()
        except (av.FFmpegError, OSError) as error:
            logger.debug("closing a dead connection failed: %s", redact(error))


def _describe_open_error(error: Exception, elapsed_s: float, timeout_s: float) -> str:
    # A timeout inside the RTSP handshake surfaces as "invalid data", not as ExitError.
    if isinstance(error, av.error.ExitError) or elapsed_s >= 0.95 * timeout_s:
        return f"no answer within {elapsed_s:.1f} s (open timeout); is the camera hung?"
    if isinstance(error, av.error.HTTPUnauthorizedError):
        return f"authorization failed: check the user name and password ({error})"
    return f"cannot connect: {error}"
