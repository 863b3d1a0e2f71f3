"""Fan one stream out to several sinks, each isolated from the others and from the pipeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sinks.base import ErrorCallback, Sink, SinkCounters, SinkStats, sink_name
from sinks.log_throttle import KeyedLogThrottle
from sinks.predictions import iter_frames
from sinks.worker import DEFAULT_MAX_QUEUE, SinkWorker

logger = logging.getLogger(__name__)


def _owner(sink: Callable[..., Any]) -> Any:
    """The object behind a sink callable: itself, or the instance a bound method belongs to."""
    return sink if isinstance(sink, Sink) else getattr(sink, "__self__", sink)


class MultiSink:
    """Calls every sink with every frame, each on its own worker (see ``SinkWorker``).

    A sink that raises is counted and reported, never propagated; a slow sink lags on its own queue.
    For file sources nothing is dropped and the slowest sink sets the pace; for live sources a
    lagging sink drops its oldest frames (counted) and the others carry on at full rate.

    Args:
        sinks: ``sink(predictions, video_frame)`` callables: ``Sink`` objects, bound methods such
            as ``video_sink.on_prediction``, or plain functions such as ``render_boxes``.
        on_error: ``on_error(sink_name, exception)`` for every failure of any sink, raised or
            absorbed (e.g. a webhook batch given up); called from worker threads.
        max_queue: frames each sink may lag behind.
    """

    def __init__(
        self,
        sinks: Sequence[Callable[[Any, Any], Any]],
        *,
        on_error: ErrorCallback | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self._workers: list[SinkWorker] = []
        self._closed = False
        self._error_listeners: list[ErrorCallback] = [] if on_error is None else [on_error]
        seen: dict[str, int] = {}
        for sink in sinks:
            name = sink_name(sink)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            owner = _owner(sink)
            if isinstance(owner, Sink):
                owner.add_error_listener(self._reporter_for(name))
            self._workers.append(SinkWorker(sink, name, max_queue=max_queue, on_error=self._report))

    def add_error_listener(self, listener: ErrorCallback) -> None:
        """Also call ``listener(sink_name, error)`` for every failure of any sink.

        Lets a pipeline handed a ready-made ``MultiSink`` turn its sink errors into status events.
        """
        self._error_listeners.append(listener)

    def _reporter_for(self, name: str) -> ErrorCallback:
        """An error listener that reports under ``name`` (the sink's possibly suffixed name)."""

        def report(_own_name: str, error: BaseException) -> None:
            self._report(name, error)

        return report

    def _report(self, name: str, error: BaseException) -> None:
        for listener in list(self._error_listeners):
            try:
                listener(name, error)
            except Exception:
                logger.exception("error listener failed for sink %s", name)

    @property
    def names(self) -> list[str]:
        return [worker.name for worker in self._workers]

    def on_prediction(self, predictions: Any, video_frame: Any) -> None:
        """Queue the frame for every sink; returns at once for live sources."""
        for frame_predictions, frame in iter_frames(predictions, video_frame):
            for worker in self._workers:
                worker.submit(frame_predictions, frame)

    def __call__(self, predictions: Any, video_frame: Any) -> None:
        self.on_prediction(predictions, video_frame)

    def stats(self) -> dict[str, SinkCounters]:
        """Counters per sink name: the queue's drops and raised errors plus the sink's own."""
        result = {}
        for worker in self._workers:
            counters = worker.stats.snapshot()
            own = getattr(_owner(worker.sink), "stats", None)
            if isinstance(own, SinkStats):
                # A Sink object counts what it wrote itself; the worker adds only what the
                # queue dropped and the exceptions the sink raised.
                queue = SinkCounters(errors=counters.errors, dropped=counters.dropped)
                counters = queue + own.snapshot()
            result[worker.name] = counters
        return result

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every sink has handled what is queued; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not worker.flush(remaining):
                return False
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Let every sink finish its queue (all within ``timeout``), then close each one."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.request_close()
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                worker.close(remaining)
            except Exception:
                logger.exception("closing sink %s failed", worker.name)

    def release(self) -> None:
        """Same as ``close()``, for symmetry with ``VideoFileSink``."""
        self.close()

    def __enter__(self) -> MultiSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_UNSET: Any = object()
"""Marks an argument not given, since ``None`` is a valid prediction."""

_SINK_ERRORS = KeyedLogThrottle()
"""One throttle shared by every ``multi_sink(predictions, video_frame, sinks=...)`` call."""


def multi_sink(
    predictions: Any = _UNSET,
    video_frame: Any = _UNSET,
    sinks: Sequence[Callable[[Any, Any], Any]] | None = None,
    *,
    on_error: ErrorCallback | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
) -> MultiSink | None:
    """Combine sinks into one ``on_prediction``; see ``MultiSink``.

    Two call forms:

    - ``multi_sink(sinks)`` or ``multi_sink(sinks=[...])`` returns a ``MultiSink``: each sink on
      its own worker, isolated.
    - ``multi_sink(predictions, video_frame, sinks=[...])`` is Roboflow's form (positional or by
      keyword), used through ``functools.partial(multi_sink, sinks=[...])``: it calls each sink in
      turn with the same arguments (a multi-source batch stays lists), logging a sink's exception
      (each distinct one once with its traceback, then throttled) so the others still run.

    Raises:
        TypeError: the arguments match neither form.

    Examples:
        >>> video = VideoFileSink.init("out.mp4")  # doctest: +SKIP
        >>> fan_out = multi_sink([render_boxes, video.on_prediction, JsonlSink("out.jsonl")])
        ... # doctest: +SKIP
        >>> pipeline = InferencePipeline.init(..., on_prediction=fan_out)  # doctest: +SKIP
        >>> fan_out.close()  # doctest: +SKIP
    """
    if video_frame is _UNSET:
        if sinks is None and predictions is not _UNSET:
            sinks, predictions = predictions, _UNSET
        if predictions is _UNSET and sinks is not None:
            return MultiSink(sinks, on_error=on_error, max_queue=max_queue)
    if predictions is _UNSET or video_frame is _UNSET or sinks is None:
        raise TypeError(
            "use multi_sink(sinks) or multi_sink(predictions, video_frame, sinks=[...])"
        )
    for sink in sinks:
        try:
            sink(predictions, video_frame)
        except Exception as error:
            name = sink_name(sink)
            kind = type(error).__name__
            _SINK_ERRORS.log(
                logger,
                logging.ERROR,
                (name, kind, str(error)),
                "could not send the prediction to sink %s: %s: %s",
                name,
                kind,
                error,
                exc_info=error,
            )
            if on_error is not None:
                on_error(name, error)
    return None
