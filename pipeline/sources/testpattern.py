"""``testpattern``: a synthetic live camera of moving shapes, for demos and tests without hardware.

Reference syntax: ``testpattern`` or ``testpattern?fps=30&size=640x480&frames=300``.

- ``fps``: frames per second, paced on the wall clock like a camera (default 30).
- ``size``: ``WIDTHxHEIGHT`` (default 640x480), 16 to 7680 a side and at most 3840x2160 in
  pixels (``frame_size.MAX_TEST_PATTERN_PIXELS``: it is drawn on the CPU for every frame).
- ``frames``: stop after this many frames (state ENDED); default: run until stopped.

It behaves like a live source (freshest frame, drops counted), so a slow consumer sees the same
frame-id gaps a real camera would produce.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from pipeline.errors import SourceError
from pipeline.sources.base import SourceState, VideoSource
from pipeline.sources.frame_size import (
    MAX_TEST_PATTERN_HEIGHT,
    MAX_TEST_PATTERN_PIXELS,
    MAX_TEST_PATTERN_WIDTH,
)

logger = logging.getLogger(__name__)

TESTPATTERN = "testpattern"
_MAX_SIDE = 7680
# If the consumer thread starves us for longer than this, restart the pacing clock instead of
# emitting a burst of frames to catch up.
_MAX_LAG_S = 1.0


@dataclass(frozen=True)
class TestPatternSpec:
    """Parsed ``testpattern?...`` reference."""

    __test__ = False  # not a pytest test class despite the name

    fps: float = 30.0
    width: int = 640
    height: int = 480
    frames: int | None = None

    @classmethod
    def parse(cls, reference: str) -> TestPatternSpec:
        """Parse the reference; ``SourceError`` names any bad or unknown parameter."""
        parts = urlsplit(reference)
        if parts.path != TESTPATTERN or parts.scheme or parts.netloc or parts.fragment:
            raise SourceError(
                f"bad test pattern reference {reference!r}: expected "
                "'testpattern' or 'testpattern?fps=30&size=640x480&frames=300'"
            )
        values: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "fps":
                values["fps"] = _parse_number(key, value, float, 0.1, 240.0)
            elif key == "size":
                values["width"], values["height"] = _parse_size(value)
            elif key == "frames":
                values["frames"] = _parse_number(key, value, int, 1, None)
            else:
                raise SourceError(
                    f"unknown test pattern parameter {key!r} in {reference!r}; "
                    "known: fps, size, frames"
                )
        return cls(**values)


def _parse_number(
    key: str, value: str, kind: type[int] | type[float], low: float, high: float | None
) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise SourceError(f"test pattern {key}={value!r} is not a {kind.__name__}") from None
    if number < low or (high is not None and number > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise SourceError(f"test pattern {key}={value} must be {bound}")
    return number


def _parse_size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(side) for side in value.lower().split("x"))
    except ValueError:
        raise SourceError(f"test pattern size={value!r} must look like 640x480") from None
    if not (16 <= width <= _MAX_SIDE and 16 <= height <= _MAX_SIDE):
        raise SourceError(f"test pattern size={value} must be between 16 and {_MAX_SIDE} a side")
    if width * height > MAX_TEST_PATTERN_PIXELS:
        raise SourceError(
            f"test pattern size={value} is more pixels than "
            f"{MAX_TEST_PATTERN_WIDTH}x{MAX_TEST_PATTERN_HEIGHT} allows: choose a smaller size"
        )
    return width, height


def draw_test_pattern(index: int, width: int, height: int, fps: float = 30.0) -> np.ndarray:
    """Frame ``index`` of the pattern: (height, width, 3) uint8 BGR, deterministic.

    A red disc on a Lissajous path, a green box bouncing along the bottom and the frame number:
    enough motion and distinct objects for a tracker to have something to follow.
    """
    t = index / fps
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.linspace(40, 90, width, dtype=np.uint8)[None, :, None]  # dark gradient
    radius = max(4, min(width, height) // 8)
    cx = int(width / 2 + (width / 2 - radius) * math.sin(2 * math.pi * t / 4.0))
    cy = int(height / 2 + (height / 2 - radius) * math.sin(2 * math.pi * t / 3.0))
    cv2.circle(image, (cx, cy), radius, (40, 40, 220), thickness=-1)
    box_w, box_h = max(8, width // 5), max(6, height // 6)
    travel = width - box_w
    phase = (t / 5.0 * 2 * travel) % (2 * travel) if travel > 0 else 0
    x0 = int(phase if phase <= travel else 2 * travel - phase)
    y0 = height - box_h - max(2, height // 20)
    cv2.rectangle(image, (x0, y0), (x0 + box_w, y0 + box_h), (60, 200, 60), thickness=-1)
    scale = max(0.4, height / 480)
    cv2.putText(
        image, f"frame {index}", (8, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
        (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA,
    )  # fmt: skip
    return image


class TestPatternSource(VideoSource):
    """Synthetic moving shapes, paced like a live camera.

    Args:
        reference: ``testpattern`` or ``testpattern?fps=..&size=WxH&frames=N``.
        **kwargs: see ``VideoSource``.

    Examples:
        source = TestPatternSource("testpattern?fps=15&size=320x240")
        source.start(); frame = source.read(timeout=1.0); source.stop()
    """

    __test__ = False
    kind = "testpattern"

    def __init__(self, reference: str = TESTPATTERN, **kwargs: Any) -> None:
        self.spec = TestPatternSpec.parse(reference)
        super().__init__(reference, **kwargs)
        self._set_declared_fps(self.spec.fps)

    def _run(self) -> None:
        spec = self.spec
        period = 1.0 / spec.fps
        next_at = time.monotonic()
        index = 0
        while spec.frames is None or index < spec.frames:
            if self._wait_while_paused():
                return
            frame_id = self._count_decoded()
            if frame_id is not None:
                drawing = time.perf_counter()
                image = draw_test_pattern(index, spec.width, spec.height, spec.fps)
                decode_s = time.perf_counter() - drawing
                if not self._publish_frame(image, frame_id, decode_s=decode_s):
                    return
            index += 1
            next_at += period
            lag = time.monotonic() - next_at
            if lag > _MAX_LAG_S:
                next_at = time.monotonic()
            if self._sleep(next_at - time.monotonic()):
                return
        self._set_link(SourceState.ENDED, f"test pattern finished after {spec.frames} frames")
