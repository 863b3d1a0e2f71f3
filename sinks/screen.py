"""Show annotated frames on screen: one OpenCV window per source."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import supervision as sv

from sinks.base import Sink, SinkState
from sinks.display import display_problem
from sinks.errors import DisplayUnavailableError
from sinks.render import DEFAULT_FPS_MONITOR, ImageWithSourceID, annotator_list, render_frame

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

    Frames are drawn by ``sinks.render.render_frame``, the path ``render_boxes`` and
    ``VideoFileSink`` share.

    Args:
        display_size: ``(width, height)`` to letterbox every frame into, or None for native size.
        fps_overlay: draw Roboflow's statistics (latency, and the rate at which this window
            receives frames) in the bottom-left corner.
        annotator: a supervision annotator or a list of them; None draws ours (masks, boxes,
            labels).

    Examples:
        >>> screen = ScreenSink(display_size=(1280, 720))  # doctest: +SKIP
        >>> pipeline = InferencePipeline.init(..., on_prediction=screen)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        display_size: tuple[int, int] | None = None,
        fps_overlay: bool = True,
        annotator: Any = None,
        name: str = "screen",
    ) -> None:
        super().__init__(name)
        self.display_size = display_size
        self.fps_overlay = fps_overlay
        self.annotators = annotator_list(annotator)
        self._display_checked = False
        self._windows: set[str] = set()
        self._fps_monitors: dict[str, sv.FPSMonitor] = {}

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        self._ensure_display()
        fps_value = None
        if self.fps_overlay:
            monitor = self._fps_monitors.setdefault(frame.video_identifier, sv.FPSMonitor())
            monitor.tick()
            fps_value = monitor.fps
        image = render_frame(
            detections,
            frame,
            annotators=self.annotators,
            display_size=self.display_size,
            display_statistics=self.fps_overlay,
            fps_value=fps_value,
        )
        self._show(WINDOW_TITLE.format(video_identifier=frame.video_identifier), image)

    def show(self, title: str, image: np.ndarray) -> bool:
        """Show an image drawn elsewhere (``render_boxes``, ``display_image``) in window ``title``.

        Returns:
            False when the sink no longer takes frames (failed or closed): the image is counted
            as dropped.

        Raises:
            DisplayUnavailableError: at the first image only, when no display can be opened.
        """
        with self._close_lock:
            if self.state is not SinkState.OPEN:
                self.stats.add(dropped=1)
                return False
            self._ensure_display()
            self._show(title, image)
            return True

    def _show(self, title: str, image: np.ndarray) -> None:
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


_DEFAULT_SCREEN: ScreenSink | None = None
_DEFAULT_SCREEN_LOCK = threading.Lock()


def _default_screen() -> ScreenSink:
    """The process-wide windows of ``render_boxes`` and ``display_image``: one display check."""
    global _DEFAULT_SCREEN
    with _DEFAULT_SCREEN_LOCK:
        if _DEFAULT_SCREEN is None:
            _DEFAULT_SCREEN = ScreenSink(name="render_boxes")
        return _DEFAULT_SCREEN


def display_image(image: ImageWithSourceID | list[ImageWithSourceID]) -> None:
    """Show ``(source_id, image)`` (or a list of them) on screen: ``render_boxes``' default.

    Roboflow's ``on_frame_rendered`` default, with our windows: one per entry, titled
    ``"sam3-stream: source <id>"``, side by side (Roboflow tiles a list into one window). When
    ``render_boxes`` calls it, windows are titled by each frame's ``video_identifier`` instead.

    Raises:
        DisplayUnavailableError: at the first image only, when no display can be opened; later
            images are dropped quietly.
    """
    entries = image if isinstance(image, list) else [image]
    screen = _default_screen()
    for source_id, picture in entries:
        if picture is not None:
            label = "N/A" if source_id is None else source_id
            screen.show(WINDOW_TITLE.format(video_identifier=f"source {label}"), picture)


def render_boxes(
    predictions: Any,
    video_frame: Any,
    annotator: Any = None,
    display_size: tuple[int, int] | None = (1280, 720),
    fps_monitor: sv.FPSMonitor | None = DEFAULT_FPS_MONITOR,
    display_statistics: bool = False,
    on_frame_rendered: Callable[[Any], None] = display_image,
    *,
    fps_overlay: bool | None = None,
) -> None:
    """Draw the detections on the frame and show it (or hand it on): a ready-made ``on_prediction``.

    Roboflow's ``render_boxes`` with its signature and defaults, so ``on_prediction=render_boxes``
    and ``functools.partial(render_boxes, fps_monitor=sv.FPSMonitor(), display_statistics=True)``
    work unchanged. Drawing is ``sinks.render.render_frame``.

    Args:
        predictions: ``sv.Detections`` or a workflow result dict; a list of them (``None`` where a
            source had no frame) in a multi-source batch.
        video_frame: the ``VideoFrame``, or a list of them (``None`` entries allowed).
        annotator: a supervision annotator or list of them; None draws ours (masks, boxes,
            ``"class #id score"`` labels coloured per tracker id).
        display_size: ``(width, height)`` to letterbox into (default 1280x720, as Roboflow's), or
            None for the native size.
        fps_monitor: ticked once per frame; its rate is the THROUGHPUT line. None: no rate.
        display_statistics: draw LATENCY and THROUGHPUT in the bottom-left corner.
        on_frame_rendered: called with ``(video_frame.source_id, image)`` for a single frame, or
            with ``[(batch position, image), ...]`` for a list (a black 256x256 image where a
            source had no frame). The default, ``display_image``, opens one window per source
            titled ``"sam3-stream: <video_identifier>"``; any other callback opens none.
        fps_overlay: our older name of ``display_statistics``; when given, it wins.

    Raises:
        DisplayUnavailableError: with the default display, at the first frame only, when no
            display can be opened; later frames are dropped quietly.

    Examples:
        >>> from functools import partial  # doctest: +SKIP
        >>> sink = partial(render_boxes, on_frame_rendered=writer.write)  # doctest: +SKIP
    """
    if fps_overlay is not None:
        display_statistics = fps_overlay
    sequential = not isinstance(video_frame, list)
    frames: list[Any] = [video_frame] if sequential else list(video_frame)
    if sequential:
        per_frame: list[Any] = [predictions]
    elif isinstance(predictions, list):
        per_frame = predictions
    else:
        per_frame = [predictions] * len(frames)
    screen = _default_screen() if on_frame_rendered is display_image else None
    if screen is not None and screen.state is not SinkState.OPEN:
        screen.stats.add(dropped=sum(frame is not None for frame in frames))
        return  # failed or closed: do not draw what nobody will see
    fps_value = None
    if fps_monitor is not None:
        for _ in range(sum(frame is not None for frame in frames)):
            fps_monitor.tick()
        fps_value = fps_monitor.fps
    annotators = annotator_list(annotator)
    images: list[ImageWithSourceID] = [
        (
            position,
            render_frame(
                frame_predictions,
                frame,
                annotators=annotators,
                display_size=display_size,
                display_statistics=display_statistics,
                fps_value=fps_value,
            ),
        )
        for position, (frame_predictions, frame) in enumerate(zip(per_frame, frames, strict=False))
    ]
    if screen is not None:
        for (_, image), frame in zip(images, frames, strict=False):
            if frame is not None:
                title = WINDOW_TITLE.format(video_identifier=frame.video_identifier)
                screen.show(title, image)
    elif sequential:
        on_frame_rendered((video_frame.source_id, images[0][1]))
    else:
        on_frame_rendered(images)
