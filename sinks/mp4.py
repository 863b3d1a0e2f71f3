"""Encode BGR frames into one MP4 file with PyAV."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)

ENCODERS_BY_CODEC: dict[str, tuple[str, ...]] = {
    "h264": ("libx264", "libopenh264"),
    "hevc": ("libx265",),
    "h265": ("libx265",),
}
"""Software encoders tried in order for a codec name; hardware ones vary by machine, so none."""

FALLBACK_ENCODER = "mpeg4"
"""In every FFmpeg build PyAV ships, so an MP4 can always be written, if larger and less sharp."""


def pick_encoder(codec: str) -> str:
    """Return the first FFmpeg encoder available for ``codec``, else ``mpeg4`` with a warning."""
    for name in ENCODERS_BY_CODEC.get(codec, (codec,)):
        try:
            av.codec.Codec(name, "w")
        except (ValueError, av.FFmpegError):
            continue
        return name
    logger.warning(
        "no %s encoder in PyAV's FFmpeg build; writing MPEG-4 Part 2 (%s) instead",
        codec,
        FALLBACK_ENCODER,
    )
    return FALLBACK_ENCODER


class Mp4Writer:
    """One MP4 file: constant frame rate, yuv420p, even dimensions; plays once ``close`` has run.

    yuv420p is what every player decodes; it halves chroma in both directions, so width and height
    must be even: odd frames get their last column or row repeated.

    Args:
        path: the file to create (overwritten).
        width: frame width in pixels; frames of another size are resized to it.
        height: frame height in pixels.
        fps: frames per second written in the file.
        codec: ``"h264"`` (libx264) or any FFmpeg encoder name.

    Examples:
        >>> writer = Mp4Writer(Path("out.mp4"), width=640, height=480, fps=30)  # doctest: +SKIP
        >>> writer.write(image_bgr)  # doctest: +SKIP
        >>> writer.close()  # doctest: +SKIP
    """

    def __init__(self, path: Path, *, width: int, height: int, fps: float, codec: str = "h264"):
        self.path = path
        self.width = width
        self.height = height
        self.frames_written = 0
        self._encoded_width = width + width % 2
        self._encoded_height = height + height % 2
        self.encoder = pick_encoder(codec)
        self._container = av.open(str(path), mode="w")
        try:
            rate = Fraction(fps).limit_denominator(1001)
            stream = self._container.add_stream(self.encoder, rate=rate)
            assert isinstance(stream, av.VideoStream)  # a video encoder makes a video stream
            self._stream = stream
            self._stream.width = self._encoded_width
            self._stream.height = self._encoded_height
            self._stream.pix_fmt = "yuv420p"
            if self.encoder == "libx264":
                # veryfast: the sink shares the CPU with the model; crf 23 is x264's default.
                self._stream.options = {"preset": "veryfast", "crf": "23"}
            elif self.encoder == FALLBACK_ENCODER:
                self._stream.bit_rate = int(self._encoded_width * self._encoded_height * fps * 0.2)
        except Exception:
            self._container.close()
            raise

    def write(self, image_bgr: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 BGR frame."""
        if image_bgr.shape[:2] != (self.height, self.width):
            # A reconnected camera may come back at another size; the file keeps its first one.
            image_bgr = cv2.resize(image_bgr, (self.width, self.height))
        if (self._encoded_width, self._encoded_height) != (self.width, self.height):
            image_bgr = cv2.copyMakeBorder(
                image_bgr,
                0,
                self._encoded_height - self.height,
                0,
                self._encoded_width - self.width,
                cv2.BORDER_REPLICATE,
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image_bgr), format="bgr24")
        frame.pts = self.frames_written
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and write the index (moov atom): without it the file does not play."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
