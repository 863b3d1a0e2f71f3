"""Encode BGR frames into one video file with PyAV: MP4 (h264), or MJPEG in AVI for ``.avi``."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from sinks.errors import SinkConfigError

logger = logging.getLogger(__name__)

ENCODERS_BY_CODEC: dict[str, tuple[str, ...]] = {
    "h264": ("libx264", "libopenh264"),
    "hevc": ("libx265",),
    "h265": ("libx265",),
}
"""Software encoders tried in order for a codec name; hardware ones vary by machine, so none."""

FALLBACK_ENCODER = "mpeg4"
"""In every FFmpeg build PyAV ships, so an MP4 can always be written, if larger and less sharp."""

MP4_SUFFIXES = (".mp4", ".m4v", ".mov")
"""The ISO media family: h264 (by default), the one container written fragmented (kill-safe)."""

AVI_SUFFIXES = (".avi",)
"""MJPEG in AVI, what Roboflow's ``VideoFileSink`` writes (``output.avi`` in its docs).

AVI has its index at the end: a process killed outright (SIGKILL, power cut) leaves a file most
players refuse. A normal exit, SIGINT or SIGTERM finalises it like an MP4.
"""

VIDEO_FILE_SUFFIXES = MP4_SUFFIXES + AVI_SUFFIXES
"""File names a video sink writes."""

AVI_ENCODER = "mjpeg"
"""Motion JPEG, Roboflow's ``MJPG`` fourcc; every FFmpeg build PyAV ships has it."""

AVI_BITS_PER_PIXEL = 1.0
"""MJPEG compresses each frame alone; about 1 bit a pixel keeps edges and labels readable."""

FRAGMENT_S = 2.0
"""Seconds between keyframes, hence between fragments: what a killed process can lose at most.

A keyframe every 2 s instead of x264's default (up to 250 frames) cost +12 % bytes on the sample
clip and +42 % with film grain added (README "Annotated video"); every 1 s cost +35 % on the clip.
"""

FRAGMENTED_MP4_OPTIONS = {
    # A moov with no samples up front, then one self-contained moof+mdat fragment per keyframe:
    # a player reads every complete fragment whether or not the file was ever finalised.
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    # Hand each fragment to the OS as it is cut: without it FFmpeg's 32 KB buffer holds several
    # fragments (and the header) in memory, and SIGKILL left a 28-byte file.
    "flush_packets": "1",
}


def check_video_file_name(path: str | Path) -> None:
    """Refuse a file name the video sink would not write as MP4 (``video:out.jsonl``...).

    Raises:
        SinkConfigError: the suffix is not one of ``VIDEO_FILE_SUFFIXES``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_FILE_SUFFIXES:
        *others, last = VIDEO_FILE_SUFFIXES
        raise SinkConfigError(
            f"a video sink writes MP4 (or MJPEG in AVI): end the file name in "
            f"{', '.join(others)} or {last} (got {suffix or 'no extension'!r})"
        )


def is_avi(path: str | Path) -> bool:
    """True when ``path`` names an AVI file, written as MJPEG (see ``AVI_SUFFIXES``)."""
    return Path(path).suffix.lower() in AVI_SUFFIXES


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
    """One MP4 file (or, for an ``.avi`` path, MJPEG in AVI): constant frame rate, even dimensions.

    yuv420p is what every player decodes; it halves chroma in both directions, so width and height
    must be even: odd frames get their last column or row repeated.

    Fragmented (``FRAGMENTED_MP4_OPTIONS``, what ``VideoFileSink`` writes): the file plays up to
    its last complete fragment (at most ``FRAGMENT_S`` behind) even if the process is killed
    before ``close``. Plain (the default, for clips made as inputs): it plays only once ``close``
    has written its index, and readers then know its frame count up front. An ``.avi`` path is
    always plain, with the ``mjpeg`` encoder (``yuvj420p``) whatever ``codec`` says.

    Args:
        path: the file to create (overwritten).
        width: frame width in pixels; frames of another size are resized to it.
        height: frame height in pixels.
        fps: frames per second written in the file.
        codec: ``"h264"`` (libx264) or any FFmpeg encoder name.
        fragmented: write a fragmented MP4 with a keyframe every ``FRAGMENT_S`` (see above).

    Examples:
        >>> writer = Mp4Writer(Path("out.mp4"), width=640, height=480, fps=30)  # doctest: +SKIP
        >>> writer.write(image_bgr)  # doctest: +SKIP
        >>> writer.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        fps: float,
        codec: str = "h264",
        fragmented: bool = False,
    ):
        self.path = path
        self.width = width
        self.height = height
        self.frames_written = 0
        self._encoded_width = width + width % 2
        self._encoded_height = height + height % 2
        avi = is_avi(path)
        self.encoder = AVI_ENCODER if avi else pick_encoder(codec)
        fragmented = fragmented and not avi
        options = dict(FRAGMENTED_MP4_OPTIONS) if fragmented else {}
        container_format = "avi" if avi else "mp4"
        self._container = av.open(str(path), mode="w", format=container_format, options=options)
        try:
            rate = Fraction(fps).limit_denominator(1001)
            stream = self._container.add_stream(self.encoder, rate=rate)
            assert isinstance(stream, av.VideoStream)  # a video encoder makes a video stream
            self._stream = stream
            self._stream.width = self._encoded_width
            self._stream.height = self._encoded_height
            # MJPEG takes full-range (JPEG) YUV; every other encoder here takes yuv420p.
            self._stream.pix_fmt = "yuvj420p" if avi else "yuv420p"
            if fragmented:
                self._stream.codec_context.gop_size = max(1, round(fps * FRAGMENT_S))
            if self.encoder == "libx264":
                # veryfast: the sink shares the CPU with the model; crf 23 is x264's default.
                self._stream.options = {"preset": "veryfast", "crf": "23"}
            elif self.encoder == FALLBACK_ENCODER:
                self._stream.bit_rate = int(self._encoded_width * self._encoded_height * fps * 0.2)
            elif avi:
                pixels_per_s = self._encoded_width * self._encoded_height * fps
                self._stream.bit_rate = int(pixels_per_s * AVI_BITS_PER_PIXEL)
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
        """Flush the encoder and end the file (a plain MP4's index, or its last fragment)."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
