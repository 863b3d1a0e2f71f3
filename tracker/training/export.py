"""Synthetic clips as files: an MP4 for the streaming path, MOT rows for tracking metrics.

``bench quality`` and the tests feed a clip to the real pipeline through a video file, then score
the tracks against the truth with a MOT library; both need the clip outside Python.
"""

from __future__ import annotations

import csv
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tracker.training.scenes import SyntheticClip

logger = logging.getLogger(__name__)

MP4_ENCODERS: tuple[str, ...] = ("libx264", "mpeg4")
"""Encoders tried in order; ``mpeg4`` is in every FFmpeg build PyAV ships."""

MOT_FIELDS: tuple[str, ...] = ("frame", "id", "x", "y", "w", "h")
"""Columns of ``mot_rows``: MOTChallenge's first six (frame numbers start at 1)."""

MotRow = tuple[int, int, float, float, float, float]


def write_clip_mp4(clip: SyntheticClip, path: str | Path, *, crf: int = 12) -> Path:
    """Encode ``clip``'s frames to an H.264 MP4 (MPEG-4 Part 2 without libx264) at ``clip.fps``.

    A low ``crf`` (near-lossless) keeps the shapes' edges where the truth says they are; yuv420p,
    what every decoder reads, needs even sides.

    Raises:
        ValueError: the clip has no frames, or an odd height or width.
    """
    if not clip.images:
        raise ValueError("clip: has no frames to write")
    for name, value in (("height", clip.height), ("width", clip.width)):
        if value % 2:
            raise ValueError(f"{name}: an MP4 (yuv420p) needs an even {name} (got {value})")
    path = Path(path)
    encoder = _pick_encoder()
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(encoder, rate=Fraction(clip.fps).limit_denominator(1001))
        assert isinstance(stream, av.VideoStream)  # a video encoder makes a video stream
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        if encoder == "libx264":
            stream.options = {"preset": "veryfast", "crf": str(crf)}
        else:
            stream.bit_rate = clip.width * clip.height * 8
        for index, image in enumerate(clip.images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _pick_encoder() -> str:
    """The first of ``MP4_ENCODERS`` this FFmpeg build has."""
    for name in MP4_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (ValueError, av.FFmpegError):
            continue
        return name
    raise RuntimeError(f"PyAV's FFmpeg has none of the encoders {', '.join(MP4_ENCODERS)}")


def mot_rows(clip: SyntheticClip, text: str | None = None) -> list[MotRow]:
    """Ground-truth rows ``(frame, id, x, y, w, h)`` for the objects ``text`` names (all: None).

    Frames count from 1 as in MOTChallenge files. Boxes are the truth's inclusive xyxy converted
    as ``sv.xyxy_to_xywh`` does (``w = x2 - x1``); convert predicted boxes the same way.
    """
    rows: list[MotRow] = []
    for truth in clip.truths:
        for obj in truth.matching(text):
            x1, y1, x2, y2 = (float(v) for v in obj.box)
            rows.append((truth.index + 1, obj.object_id, x1, y1, x2 - x1, y2 - y1))
    return rows


def write_mot_gt(clip: SyntheticClip, path: str | Path, text: str | None = None) -> Path:
    """Write ``mot_rows`` as a MOTChallenge ``gt.txt``: the six columns, then ``1,-1,-1,-1``."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for row in mot_rows(clip, text):
            writer.writerow([*row[:2], *(f"{v:g}" for v in row[2:]), 1, -1, -1, -1])
    return path
