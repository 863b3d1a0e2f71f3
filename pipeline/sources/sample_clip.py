"""A short synthetic clip for the demo and tests: moving shapes, encoded with PyAV."""

from __future__ import annotations

import pathlib
from fractions import Fraction

import av
import numpy as np


def sample_frame(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """Frame ``index`` (BGR uint8): a green square sliding right, a magenta disc bouncing."""
    frame = np.full((height, width, 3), (60, 40, 30), dtype=np.uint8)
    side = height // 4
    x = int((index * 4) % (width - side))
    y = height // 5
    frame[y : y + side, x : x + side] = (60, 200, 40)
    yy, xx = np.ogrid[:height, :width]
    radius = height // 8
    period = 2 * (width - 2 * radius)
    travel = (index * 6) % period
    cx = radius + (travel if travel < period // 2 else period - travel)
    cy = height - 2 * radius
    frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = (220, 60, 200)
    return frame


def write_sample_clip(
    path: str | pathlib.Path,
    *,
    frames: int = 45,
    fps: int = 15,
    width: int = 320,
    height: int = 240,
) -> pathlib.Path:
    """Encode ``frames`` frames of :func:`sample_frame` to an H.264 MP4 at ``path``."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            video_frame = av.VideoFrame.from_ndarray(
                sample_frame(index, width, height), format="bgr24"
            )
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
