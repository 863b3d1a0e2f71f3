"""One JSON object per frame, appended to a file and on disk as soon as it is written."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import supervision as sv

from sinks.base import Sink, SinkState
from sinks.errors import SinkWriteError
from sinks.serialize import MaskFormat, check_mask_format, dumps, frame_record

logger = logging.getLogger(__name__)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class JsonlSink(Sink):
    """Append one line per frame (schema: ``sinks.serialize``) to ``path``.

    Each line goes to the file in one ``write`` on an ``O_APPEND`` descriptor, with no buffer in
    between: a crash or a SIGTERM loses at most the line being written, and a reader tailing the
    file never sees half a line from an earlier frame. If a previous run died mid-line, a newline is
    added first, so its torn line stays alone and every new line parses.

    A write the system refuses (disk full) raises ``SinkWriteError`` once; the sink then stops
    taking frames (counted as dropped), since every later line would be lost the same way.

    Serialising runs on the caller's thread (RLE costs a few ms per object at 1080p); inside
    ``multi_sink`` that is the sink's own worker, not the inference loop.

    Args:
        path: the file to append to; created if missing, its directory must exist.
        mask_format: ``"rle"`` (COCO run-length, exact), ``"polygon"`` or ``"none"``.

    Examples:
        >>> sink = JsonlSink("detections.jsonl", mask_format="rle")  # doctest: +SKIP
        >>> pipeline = InferencePipeline.init(..., on_prediction=sink)  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, mask_format: str = "rle") -> None:
        super().__init__(f"jsonl:{path}")
        self.path = Path(path)
        self.mask_format: MaskFormat = check_mask_format(mask_format)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._terminate_torn_line()
        except OSError:
            os.close(self._fd)
            raise

    def _terminate_torn_line(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as existing:
            existing.seek(size - 1)
            if existing.read(1) != b"\n":
                logger.warning(
                    "%s: last line was cut short by an earlier run; keeping it", self.name
                )
                _write_all(self._fd, b"\n")

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        line = dumps(frame_record(detections, frame, mask_format=self.mask_format)) + "\n"
        data = line.encode()
        with self._lock:
            if self._state is not SinkState.OPEN:
                self.stats.add(dropped=1)
                return
            try:
                _write_all(self._fd, data)
            except OSError as error:
                # Disk full (/dev/full), quota, a vanished mount: the next line would fail too.
                self._fail()
                raise SinkWriteError(
                    f"cannot write {self.path}: {error.strerror or error}"
                ) from error
        self.stats.add(frames_written=1)

    def _close(self) -> None:
        with self._lock:
            os.close(self._fd)
