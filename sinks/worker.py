"""Run one sink on its own thread behind a bounded queue, so it cannot hold up the loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sinks.base import ErrorCallback, SinkStats, close_sink
from sinks.errors import SinkError
from sinks.frame_queue import FrameQueue
from sinks.log_throttle import KeyedLogThrottle

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 8
"""Frames a sink may lag behind: enough to absorb a hiccup, small enough to stay close to live."""

_Job = tuple[Any, Any]  # (predictions, video_frame)


class SinkWorker:
    """One sink, one thread, one bounded ``FrameQueue``; its policy follows the frame's source.

    QUEUE POLICY (``sinks.frame_queue``): frames from a file (``comes_from_video_file``) are never
    dropped: when the queue is full, ``submit`` waits, so the slowest sink sets the pace of a file
    run and its output is complete. Frames from a live source never wait: when the queue is full
    the oldest queued live frame is dropped and counted, so a lagging sink shows recent frames and
    the camera keeps its rate.

    Exceptions raised by the sink are caught on the worker thread, counted, logged and passed to
    ``on_error(name, exception)``; they never reach the pipeline. Each distinct error (type and
    message) is logged the first time with its traceback, then at most once a minute with a count
    (``KeyedLogThrottle``); a ``SinkError`` is logged as one line, since its message is the fix.

    Args:
        sink: any ``sink(predictions, video_frame)`` callable.
        name: how status and logs refer to the sink.
        max_queue: frames held for the sink.
        on_error: called on the worker thread for every exception the sink raises.
    """

    def __init__(
        self,
        sink: Callable[[Any, Any], Any],
        name: str,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self.max_queue = max_queue
        self.on_error = on_error
        self.stats = SinkStats()
        self._queue: FrameQueue[_Job] = FrameQueue(max_queue, is_live=_is_live)
        self._error_log = KeyedLogThrottle()
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    def submit(self, predictions: Any, frame: Any) -> None:
        """Queue one frame for the sink, applying the queue policy (see the class docstring)."""
        if self._queue.put((predictions, frame)) is not None:
            self.stats.add(dropped=1)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the sink has handled everything queued; False if ``timeout`` passed first."""
        return self._queue.join(timeout)

    def request_close(self) -> None:
        """Stop taking frames; the worker finishes what is queued. ``close`` waits for it."""
        self._queue.close()

    def close(self, timeout: float | None = 10.0) -> None:
        """Let the sink finish what is queued (up to ``timeout``), then close the sink itself."""
        self.request_close()
        self._thread.join(timeout)
        left = self._queue.stop()
        if left:
            logger.warning("sink %s: closed with %d frame(s) not handled", self.name, left)
            self.stats.add(dropped=left)
        if self._thread.is_alive():
            logger.warning("sink %s is still busy with a frame; closing it anyway", self.name)
        close_sink(self.sink)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            predictions, frame = job
            try:
                self.sink(predictions, frame)
            except Exception as error:
                self.stats.add(errors=1)
                self._log_error(error)
                if self.on_error is not None:
                    try:
                        self.on_error(self.name, error)
                    except Exception:
                        logger.exception("on_error callback failed for sink %s", self.name)
            else:
                self.stats.add(frames_written=1)
            finally:
                self._queue.task_done()

    def _log_error(self, error: Exception) -> None:
        # A user-facing SinkError (no display...) says what to do; a traceback would bury that.
        self._error_log.log(
            logger,
            logging.ERROR,
            (type(error).__name__, str(error)),
            "sink %s failed on a frame: %s: %s",
            self.name,
            type(error).__name__,
            error,
            exc_info=None if isinstance(error, SinkError) else error,
        )


def _is_live(job: _Job) -> bool:
    return not getattr(job[1], "comes_from_video_file", False)
