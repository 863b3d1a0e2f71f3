"""Write annotated frames to video files, one per source, finalised however the process ends."""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import supervision as sv

from sinks.base import Sink, SinkState
from sinks.errors import SinkConfigError, SinkWriteError
from sinks.mp4 import Mp4Writer, check_video_file_name
from sinks.render import DEFAULT_FPS_MONITOR, annotator_list, render_frame

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
"""Used when neither ``output_fps`` nor the source says how fast it is (some webcams, some RTSP)."""

# Strong references on purpose: a sink dropped without release() must still be finalised at exit,
# not garbage-collected with its file unplayable. release() removes it.
_OPEN_SINKS: set[VideoFileSink] = set()
_OPEN_SINKS_LOCK = threading.Lock()


def _check_creatable(path: Path) -> None:
    """Create ``path`` if it is missing and remove it again: ``open`` tells what ``access`` can't.

    ``os.access`` says yes to root everywhere, and procfs or a read-only mount refuse files only
    when one is made. An existing file is opened for writing without truncating it; the encoder
    replaces it at the first frame.

    Raises:
        SinkConfigError: the file cannot be created or written, with the system's reason.
    """
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            # O_NONBLOCK: a FIFO with no reader fails at once instead of hanging here.
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            return
        os.close(fd)
        os.unlink(path)
    except OSError as error:
        raise SinkConfigError(f"cannot create {path}: {error.strerror or error}") from error


def _release_open_sinks() -> None:
    # An MP4 without its index does not play; a normal interpreter exit (including SystemExit from
    # a SIGTERM handler) must finalise every file even if nobody called release().
    with _OPEN_SINKS_LOCK:
        open_sinks = list(_OPEN_SINKS)
    for sink in open_sinks:
        try:
            sink.release()
        except Exception:
            logger.exception("could not finalise %s at exit", sink.name)


atexit.register(_release_open_sinks)


class VideoFileSink(Sink):
    """Annotated video output: ``VideoFileSink.init("out.mp4")``, then its ``on_prediction``.

    Two ways in, one sink:

    - ``VideoFileSink.init(...)`` is Roboflow's, with its defaults: frames letterboxed to
      1280x720, written at 25 fps, and ``"Writing frame N"`` printed per frame (``quiet=False``).
    - The constructor keeps ours: native size, the source's fps, silent. The ``video:`` sink spec
      and ``sam3-stream demo`` use it.

    A pipeline with several sources gets one file per ``video_identifier`` (Roboflow tiles them
    into one mosaic; one file holds one timeline, and sources differ in fps): source 0 writes to
    ``video_file_name`` itself, every other source to ``<stem>.<video_identifier><suffix>`` (the
    identifier made safe for a file name).

    ``.mp4``, ``.m4v`` and ``.mov`` are written as fragmented MP4 (``sinks.mp4.Mp4Writer``, h264
    by default): a process killed outright (SIGKILL, power cut) still leaves a file that plays up
    to its last complete fragment, at most ``sinks.mp4.FRAGMENT_S`` short. ``.avi`` is MJPEG in
    AVI, as Roboflow writes it; AVI is not kill-safe (its index is written at the end). Either is
    finalised (encoder flushed, index or last fragment written) by ``release()``/``close()``, by
    the pipeline on ``terminate()`` and on SIGINT/SIGTERM, and by an ``atexit`` hook on any
    normal interpreter exit.

    Checked when the sink is made, so a bad name fails before any model loads: the name must end
    in ``.mp4``, ``.m4v``, ``.mov`` or ``.avi``, and the file must be creatable (a directory that
    exists but refuses new files, such as ``/proc``, is refused here, not at the first frame). A
    write that fails later (disk full) raises ``SinkWriteError`` once; the sink then stops taking
    frames.

    Args:
        video_file_name: path of the file to write; its directory must exist.
        annotator: a supervision annotator or a list of them; None draws ours (masks, boxes,
            labels).
        display_size: ``(width, height)`` to letterbox each drawn frame into, or None (native).
        fps_monitor: an ``sv.FPSMonitor`` ticked per frame, for the THROUGHPUT statistic.
        display_statistics: draw Roboflow's LATENCY / THROUGHPUT lines on each frame.
        output_fps: frame rate written in the file; None takes the source's declared fps, then its
            measured fps, then ``DEFAULT_FPS``.
        quiet: False prints ``"Writing frame N"`` (carriage return, no newline) per frame.
        video_frame_size: ``(width, height)`` of the file; frames of another size are
            letterboxed into it. None: the size of the first drawn frame.
        codec: ``"h264"`` (libx264; falls back to mpeg4 with a warning when PyAV lacks it) or an
            FFmpeg encoder name; ignored for ``.avi`` (always ``mjpeg``). None: ``"h264"``.
        annotate_frames: draw the detections (True) or write the bare frames.
    """

    def __init__(
        self,
        video_file_name: str | Path,
        annotator: Any = None,
        display_size: tuple[int, int] | None = None,
        fps_monitor: sv.FPSMonitor | None = None,
        display_statistics: bool = False,
        output_fps: float | None = None,
        quiet: bool = True,
        video_frame_size: tuple[int, int] | None = None,
        *,
        codec: str | None = None,
        annotate_frames: bool = True,
    ) -> None:
        super().__init__(f"video:{video_file_name}")
        self.path = Path(video_file_name)
        check_video_file_name(self.path)
        _check_creatable(self.path)
        self.annotators = annotator_list(annotator)
        self.display_size = display_size
        self.fps_monitor = fps_monitor
        self.display_statistics = display_statistics
        self.output_fps = output_fps
        self.quiet = quiet
        self.video_frame_size = video_frame_size
        self.codec = codec or "h264"
        self.annotate_frames = annotate_frames
        self._frame_index = 0
        self._lock = threading.Lock()
        self._writers: dict[str, Mp4Writer] = {}
        self._paths: dict[str, Path] = {}
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-file-sink")
        with _OPEN_SINKS_LOCK:
            _OPEN_SINKS.add(self)

    @classmethod
    def init(
        cls,
        video_file_name: str | Path,
        annotator: Any = None,
        display_size: tuple[int, int] | None = (1280, 720),
        fps_monitor: sv.FPSMonitor | None = DEFAULT_FPS_MONITOR,
        display_statistics: bool = False,
        output_fps: float = 25,
        quiet: bool = False,
        video_frame_size: tuple[int, int] = (1280, 720),
        *,
        codec: str | None = None,
    ) -> VideoFileSink:
        """Create the sink with Roboflow's signature and defaults (see the class docstring).

        Examples:
            >>> sink = VideoFileSink.init("output.avi", quiet=True)  # doctest: +SKIP
            >>> pipeline = InferencePipeline.init(..., on_prediction=sink.on_prediction)
            ... # doctest: +SKIP
            >>> sink.release()  # doctest: +SKIP
        """
        return cls(
            video_file_name,
            annotator=annotator,
            display_size=display_size,
            fps_monitor=fps_monitor,
            display_statistics=display_statistics,
            output_fps=output_fps,
            quiet=quiet,
            video_frame_size=video_frame_size,
            codec=codec,
        )

    @property
    def files(self) -> dict[str, Path]:
        """The MP4 written for each ``video_identifier`` so far."""
        with self._lock:
            return dict(self._paths)

    def release(self) -> None:
        """Finalise every file; same as ``close()``."""
        self.close()

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        fps_value = None
        if self.fps_monitor is not None:
            self.fps_monitor.tick()
            fps_value = self.fps_monitor.fps
        image = render_frame(
            detections,
            frame,
            annotators=self.annotators if self.annotate_frames else [],
            display_size=self.display_size,
            display_statistics=self.display_statistics,
            fps_value=fps_value,
        )
        if self.video_frame_size is not None:
            width, height = (int(side) for side in self.video_frame_size)
            if image.shape[:2] != (height, width):
                image = sv.letterbox_image(image, (width, height))
        # Encoding runs on the sink's own thread and the caller waits for it. Python runs signal
        # handlers on the main thread only, so a SIGTERM that raises SystemExit there cannot cut
        # in between encoding a frame and muxing its packets (a lost packet corrupts every later
        # frame); the write in progress finishes, then the atexit hook finalises the file.
        try:
            future = self._encoder.submit(self._encode, frame, image)
        except RuntimeError:  # the interpreter is shutting down: no new threads
            self._encode(frame, image)
            return
        future.result()

    def _encode(self, frame: Any, image: Any) -> None:
        with self._lock:
            if self._state is not SinkState.OPEN:
                self.stats.add(dropped=1)
                return
            try:
                writer = self._writers.get(frame.video_identifier)
                if writer is None:
                    writer = self._open_writer(frame, image)
                writer.write(image)
                if not self.quiet:
                    print(f"Writing frame {self._frame_index}", end="\r", flush=True)
                self._frame_index += 1
            except (OSError, av.FFmpegError) as error:
                # Disk full or file gone: every later frame would fail the same way.
                self._fail()
                reason = getattr(error, "strerror", None) or error
                raise SinkWriteError(f"cannot write {self.path}: {reason}") from error
        self.stats.add(frames_written=1)

    def _open_writer(self, frame: Any, image: Any) -> Mp4Writer:
        path = self._path_for(frame)
        fps = self.output_fps or frame.fps or frame.measured_fps
        if not fps or fps <= 0:
            logger.warning(
                "%s: source %s does not say its fps; writing %s fps (pass output_fps to choose)",
                self.name,
                frame.video_identifier,
                DEFAULT_FPS,
            )
            fps = DEFAULT_FPS
        height, width = image.shape[:2]
        writer = Mp4Writer(
            path, width=width, height=height, fps=float(fps), codec=self.codec, fragmented=True
        )
        self._writers[frame.video_identifier] = writer
        self._paths[frame.video_identifier] = path
        logger.info(
            "%s: writing %s (%dx%d, %.2f fps, %s)",
            self.name,
            path,
            width,
            height,
            fps,
            writer.encoder,
        )
        return writer

    def _path_for(self, frame: Any) -> Path:
        taken = set(self._paths.values())
        if frame.source_id == 0 and self.path not in taken:
            return self.path
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(frame.video_identifier)).strip("._")
        safe = safe[:80] or f"source{frame.source_id}"
        candidate = self.path.with_name(f"{self.path.stem}.{safe}{self.path.suffix}")
        counter = 2
        while candidate in taken or candidate == self.path:
            candidate = self.path.with_name(f"{self.path.stem}.{safe}-{counter}{self.path.suffix}")
            counter += 1
        return candidate

    def _close(self) -> None:
        with self._lock:
            writers, self._writers = dict(self._writers), {}
            for identifier, writer in writers.items():
                try:
                    writer.close()
                except Exception as error:
                    logger.exception("%s: could not finalise %s", self.name, writer.path)
                    self._report_error(error)
                else:
                    logger.info(
                        "%s: finalised %s (%s, %d frames)",
                        self.name,
                        writer.path,
                        identifier,
                        writer.frames_written,
                    )
        self._encoder.shutdown(wait=False)
        with _OPEN_SINKS_LOCK:
            _OPEN_SINKS.discard(self)
