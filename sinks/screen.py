"""Show annotated frames on screen: one OpenCV window per source."""

from __future__ import annotations

import logging
import threading
from typing import Any

import cv2
import numpy as np
import supervision as sv

from sinks.annotate import annotated_frame
from sinks.base import Sink
from sinks.display import display_problem
from sinks.errors import DisplayUnavailableError

logger = logging.getLogger(__name__)

WINDOW_TITLE = "sam3-stream: {video_identifier}"
"""One window per source, titled by the source's ``video_identifier``."""

WINDOW_GAP = 8
"""Pixels between the windows of two sources, which open side by side."""


class ScreenSink(Sink):
    """Shows each frame, annotated, in a window per ``video_identifier``.

    The display is checked once, at the first frame. Without one the sink raises
    ``DisplayUnavailableError`` once and then stays ``FAILED``: later frames are counted as dropped,
    never raised again, so a headless run logs one clear line instead of one per frame.

    Args:
        display_size: ``(width, height)`` to letterbox every frame into, or None for native size.
        fps_overlay: draw the rate at which this window receives frames in its corner.

    Examples:
        >>> screen = ScreenSink(display_size=(1280, 720))  # doctest: +SKIP
        >>> pipeline = InferencePipeline.init(..., on_prediction=screen)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        display_size: tuple[int, int] | None = None,
        fps_overlay: bool = True,
        name: str = "screen",
    ) -> None:
        super().__init__(name)
        self.display_size = display_size
        self.fps_overlay = fps_overlay
        self._display_checked = False
        self._windows: set[str] = set()
        self._fps_monitors: dict[str, sv.FPSMonitor] = {}

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        self._ensure_display()
        image = annotated_frame(detections, frame)
        if self.display_size is not None:
            image = sv.letterbox_image(image, self.display_size)
        if self.fps_overlay:
            image = self._draw_fps(np.array(image), frame.video_identifier)
        title = WINDOW_TITLE.format(video_identifier=frame.video_identifier)
        new_window = title not in self._windows
        if new_window:
            # GUI_NORMAL: no Qt toolbar or status bar, the window shows exactly the frame.
            cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            self._windows.add(title)
        cv2.imshow(title, image)
        if new_window:
            _place_window(title, image.shape[1])
        cv2.waitKey(1)  # lets the GUI paint; without it the window stays blank
        self.stats.add(frames_written=1)

    def _ensure_display(self) -> None:
        if self._display_checked:
            return
        problem = display_problem()
        if problem is not None:
            self._fail()
            raise DisplayUnavailableError(problem)
        self._display_checked = True

    def _draw_fps(self, image: np.ndarray, video_identifier: str) -> np.ndarray:
        monitor = self._fps_monitors.setdefault(video_identifier, sv.FPSMonitor())
        monitor.tick()
        fps = monitor.fps
        if fps <= 0:  # a rate needs two frames
            return image
        scale = max(0.4, image.shape[1] / 1600)
        origin = (int(10 * scale / 0.4), int(24 * scale / 0.4))
        text = f"{fps:.1f} FPS"
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(image, text, origin, font, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, text, origin, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        return image

    def _close(self) -> None:
        for title in self._windows:
            try:
                cv2.destroyWindow(title)
            except cv2.error:
                logger.debug("window %s was already gone", title)
        self._windows.clear()
        if self._display_checked:
            cv2.waitKey(1)


_next_window_x = 0
_next_window_x_lock = threading.Lock()


def _place_window(title: str, width: int) -> None:
    """Put a new window right of the previous one, whichever ``ScreenSink`` opened that one.

    Without this every window opens at the same spot, on top of the others (always so without a
    window manager, e.g. on a kiosk X server). Qt ignores a move before the window is shown, so
    this runs after the first ``imshow``.
    """
    global _next_window_x
    with _next_window_x_lock:
        x, _next_window_x = _next_window_x, _next_window_x + width + WINDOW_GAP
    cv2.moveWindow(title, x, 0)


_DEFAULT_SCREENS: dict[tuple[tuple[int, int] | None, bool], ScreenSink] = {}
_DEFAULT_SCREENS_LOCK = threading.Lock()


def render_boxes(
    predictions: Any,
    video_frame: Any,
    *,
    display_size: tuple[int, int] | None = None,
    fps_overlay: bool = True,
) -> None:
    """Show the annotated frame in a window per source: a ready-made ``on_prediction``.

    Same call shape as Roboflow's ``render_boxes``, so ``on_prediction=render_boxes`` and
    ``functools.partial(render_boxes, display_size=(1280, 720))`` work unchanged. Backed by one
    ``ScreenSink`` per set of options, kept for the life of the process.

    Args:
        predictions: ``sv.Detections`` or a workflow result dict.
        video_frame: the ``VideoFrame`` (or a list of them, one per source).
        display_size: ``(width, height)`` to letterbox into, or None for native size.
        fps_overlay: draw the window's frame rate in its corner.

    Raises:
        DisplayUnavailableError: at the first frame only, when no display can be opened.
    """
    # A list from a config file must find the same window as the tuple it spells.
    size = None if display_size is None else (int(display_size[0]), int(display_size[1]))
    key = (size, fps_overlay)
    with _DEFAULT_SCREENS_LOCK:
        screen = _DEFAULT_SCREENS.get(key)
        if screen is None:
            screen = ScreenSink(display_size=size, fps_overlay=fps_overlay)
            _DEFAULT_SCREENS[key] = screen
    screen.on_prediction(predictions, video_frame)
