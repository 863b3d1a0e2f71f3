"""Write annotated frames to MP4 files, one per source, finalised whatever way the process ends."""

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

from sinks.annotate import annotated_frame
from sinks.base import Sink, SinkState
from sinks.errors import SinkConfigError, SinkWriteError
from sinks.mp4 import Mp4Writer, check_video_file_name

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
    """Annotated MP4 output: ``VideoFileSink.init("out.mp4")``, then its ``on_prediction``.

    A pipeline with several sources gets one file per ``video_identifier``: source 0 writes to
    ``video_file_name`` itself, every other source to ``<stem>.<video_identifier><suffix>`` (the
    identifier made safe for a file name), because one MP4 holds one picture size and one timeline.

    The file is finalised (encoder flushed, last fragment written) by ``release()``/``close()``,
    by the pipeline on ``terminate()`` and on SIGINT/SIGTERM, and by an ``atexit`` hook on any
    normal interpreter exit, so it plays to its last frame. It is a fragmented MP4
    (``sinks.mp4.Mp4Writer``), so a process killed outright (SIGKILL, power cut) still leaves a
    file that plays up to its last complete fragment, at most ``sinks.mp4.FRAGMENT_S`` short.

    Checked when the sink is made, so a bad name fails before any model loads: the name must end
    in ``.mp4``, ``.m4v`` or ``.mov``, and the file must be creatable (a directory that exists but
    refuses new files, such as ``/proc``, is refused here, not at the first frame). A write that
    fails later (disk full) raises ``SinkWriteError`` once; the sink then stops taking frames.

    Args:
        video_file_name: path of the MP4 to write; its directory must exist.
        output_fps: frame rate written in the file; None takes the source's declared fps, then its
            measured fps, then ``DEFAULT_FPS``.
        codec: ``"h264"`` (libx264; falls back to mpeg4 with a warning when PyAV lacks it) or an
            FFmpeg encoder name.
        annotate_frames: draw masks, boxes and labels (True) or write the raw frames.
    """

    def __init__(
        self,
        video_file_name: str | Path,
        *,
        output_fps: float | None = None,
        codec: str = "h264",
        annotate_frames: bool = True,
    ) -> None:
        super().__init__(f"video:{video_file_name}")
        self.path = Path(video_file_name)
        check_video_file_name(self.path)
        _check_creatable(self.path)
        self.output_fps = output_fps
        self.codec = codec
        self.annotate_frames = annotate_frames
        self._lock = threading.Lock()
        self._writers: dict[str, Mp4Writer] = {}
        self._paths: dict[str, Path] = {}
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-file-sink")
        with _OPEN_SINKS_LOCK:
            _OPEN_SINKS.add(self)

    @classmethod
    def init(
        cls, video_file_name: str | Path, output_fps: float | None = None, codec: str = "h264"
    ) -> VideoFileSink:
        """Create the sink; the Roboflow-style spelling of the constructor."""
        return cls(video_file_name, output_fps=output_fps, codec=codec)

    @property
    def files(self) -> dict[str, Path]:
        """The MP4 written for each ``video_identifier`` so far."""
        with self._lock:
            return dict(self._paths)

    def release(self) -> None:
        """Finalise every file; same as ``close()``."""
        self.close()

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        image = annotated_frame(detections, frame) if self.annotate_frames else frame.image
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
                    writer = self._open_writer(frame)
                writer.write(image)
            except (OSError, av.FFmpegError) as error:
                # Disk full or file gone: every later frame would fail the same way.
                self._fail()
                reason = getattr(error, "strerror", None) or error
                raise SinkWriteError(f"cannot write {self.path}: {reason}") from error
        self.stats.add(frames_written=1)

    def _open_writer(self, frame: Any) -> Mp4Writer:
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
        height, width = frame.image.shape[:2]
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
