"""A short synthetic clip for the demo, benchmarks and tests: moving shapes, encoded with PyAV.

Its picture is not ``draw_test_pattern``'s on purpose: the demo prompts ``"square, circle"`` by
default and the real-weights check asks SAM3 to find the square, so this clip shows exactly a
square and a disc, with no text; the live test pattern has an oblong box and a frame counter.
The square is green and the disc magenta: the bundled shapes model (``tracker.shapes_checkpoint``)
knows colour words only, and the demo asks it for ``"green, magenta"``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from sinks.mp4 import Mp4Writer


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
    """Encode ``frames`` frames of :func:`sample_frame` to an H.264 MP4 at ``path``.

    Written by the annotated-video sink's own encoder, so the clip is made the way every MP4 of
    the project is (H.264 where PyAV's FFmpeg has it, MPEG-4 Part 2 otherwise).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = Mp4Writer(path, width=width, height=height, fps=fps)
    try:
        for index in range(frames):
            writer.write(sample_frame(index, width, height))
    finally:
        writer.close()
    return path
