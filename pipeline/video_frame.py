"""The frame record that flows from a source to the model and on to the sinks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame and where it came from.

    Field names match Roboflow's ``inference`` ``VideoFrame`` so that code written for
    ``InferencePipeline`` reads them unchanged.

    Attributes:
        image: (H, W, 3) uint8, BGR channel order as OpenCV and PyAV ``bgr24`` give it.
        frame_id: per-source counter, strictly increasing within one source.
        frame_timestamp: wall clock at grab for live sources, PTS-derived for files; a naive
            ``datetime`` in the machine's local time, as Roboflow's (so
            ``datetime.now() - frame.frame_timestamp`` works); JSON outputs write it in UTC.
        fps: the frame rate the source declares (may be 0.0 when unknown).
        measured_fps: the frame rate actually observed at the source.
        source_id: index of the source in its pipeline.
        video_identifier: unique name of the source within the process (credentials redacted).
        comes_from_video_file: True for file sources, False for live ones.
        epoch: 0 at the first connect, +1 at every reconnect or restart of the source.
    """

    image: np.ndarray
    frame_id: int
    frame_timestamp: datetime
    fps: float = 0.0
    measured_fps: float = 0.0
    source_id: int = 0
    video_identifier: str = "0"
    comes_from_video_file: bool = False
    epoch: int = 0
