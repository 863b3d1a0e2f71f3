"""Webcams through OpenCV: an index (``0``) or a V4L2 device path (``/dev/video0``).

OpenCV rather than PyAV because it picks the right capture backend per platform (V4L2, AVFoundation,
DirectShow/MSMF) and already returns BGR. A webcam is a live source: freshest frame, watchdog,
and ``ReconnectingSource``'s reconnect loop (a USB camera that is unplugged and plugged back in
comes back); this module supplies only opening, reading and releasing the device.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from pipeline.errors import SourceError
from pipeline.sources.reconnecting import ReconnectingSource

logger = logging.getLogger(__name__)


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the webcam source uses (tests pass a stand-in)."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop_id: int) -> float: ...

    def set(self, prop_id: int, value: float) -> bool: ...

    def release(self) -> None: ...


def device_exists(node: Path) -> bool:
    """Whether a V4L2 device node is there (a seam for tests on machines without cameras)."""
    return node.exists()


def open_capture(device: int | str) -> Capture:
    """Open a capture device with OpenCV's default backend for this platform."""
    return cv2.VideoCapture(device)


class WebcamSource(ReconnectingSource[Capture]):
    """A local camera.

    Args:
        device: camera index, or a ``/dev/videoN`` path.
        capture_factory: opens the device; defaults to ``open_capture`` (OpenCV).
        **kwargs: see ``VideoSource``.

    Raises:
        SourceError: on Linux, when the device node does not exist (nothing to retry against).
    """

    kind = "webcam"

    def __init__(
        self,
        device: int | str,
        *,
        capture_factory: Any = open_capture,
        **kwargs: Any,
    ) -> None:
        node = Path(f"/dev/video{device}") if isinstance(device, int) else Path(device)
        if sys.platform.startswith("linux") and not device_exists(node):
            raise SourceError(
                f"no webcam at {node}: connect one, or list cameras with `ls /dev/video*`"
            )
        self.device = device
        self._capture_factory = capture_factory
        super().__init__(f"webcam:{device}" if isinstance(device, int) else device, **kwargs)

    def _connect(self) -> Capture | None:
        capture = self._capture_factory(self.device)
        if capture.isOpened():
            return capture
        capture.release()
        self._record_failure(f"cannot open webcam {self.device}", connect=True)
        logger.warning("cannot open webcam %s", self.device)
        return None

    def _pump(self, capture: Capture) -> tuple[bool, str]:
        """Grab frames until the camera fails or goes silent; returns (got frames, why it ended)."""
        got_frames = False
        # One frame of driver buffering at most: we want the newest, not a queue.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._set_declared_fps(float(capture.get(cv2.CAP_PROP_FPS) or 0.0))
        last_frame_at = time.monotonic()
        while not self._must_release:
            ok, image = capture.read()
            if not ok or image is None:
                if time.monotonic() - last_frame_at > self.options.stall_timeout_s:
                    return got_frames, f"no frame for {self.options.stall_timeout_s:g} s"
                if self._sleep(0.01):  # the driver had nothing yet; poll again shortly
                    break
                continue
            last_frame_at = time.monotonic()
            if image.ndim == 2:  # some IR and mono cameras
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            frame_id = self._count_decoded()
            if frame_id is None:
                continue
            got_frames = True
            if not self._publish_frame(image, frame_id):  # (H, W, 3) uint8 BGR
                break
        return got_frames, "stopped" if self._stopping else "paused"

    def _disconnect(self, capture: Capture) -> None:
        capture.release()
